"""The environment variables the config reads, named once in a module that imports nothing.

colab.py sets one of them before the package's dependencies are installed, so it cannot import config.py.
"""
DATA_DIR_ENV = "OTHERDATA_DATA_DIR"
RUNS_DIR_ENV = "OTHERDATA_RUNS_DIR"
CACHE_DIR_ENV = "OTHERDATA_CACHE_DIR"
# A params file read over every params file `load_config` reads (Colab's Hub data: `colab.setup` sets it)
PARAMS_OVERLAY_ENV = "OTHERDATA_PARAMS_OVERLAY"
