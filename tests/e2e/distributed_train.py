"""A small train.train run that tests/e2e/test_distributed.py launches under torchrun (2 CPU processes, gloo) or alone.

Each process writes OUT/rank-<r>.json: the training rows it was handed per epoch, every model save it made, its final
validation scores; the main process also saves the final model to OUT/model.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", required=True, help="a local model folder (the session's tiny random BERT)")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--per-device-batch", type=int, default=8)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--train-rows", type=int, default=192)
    parser.add_argument("--validation-rows", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import torch
    from accelerate import PartialState
    from datasets import DatasetDict
    from torch.utils.data import DataLoader, Dataset

    torch.set_num_threads(1)
    # On CPU, accelerate starts its process group (gloo) only when the CPU is asked for before anything else.
    state = PartialState(cpu=True)

    from otherdata_utils import data, modeling, train
    from otherdata_utils.config import Config
    from otherdata_utils.io import atomic_write_json

    # --- record what this process is handed and what it saves, without changing either
    seen: dict[int, list[int]] = defaultdict(list)  # epoch -> rows of the training split
    saves: list[str] = []
    make_dataloader, save_and_swap = train.make_dataloader, modeling._save_and_swap

    def recording_make_dataloader(split, tokenizer, *, shuffle, **kwargs):
        loader = make_dataloader(split, tokenizer, shuffle=shuffle, **kwargs)
        if not shuffle:  # evaluation batches
            return loader
        sampler, rows = loader.batch_sampler, loader.dataset

        class Recorded(Dataset):
            def __len__(self) -> int:
                return len(rows)

            def __getitem__(self, row: int):
                seen[sampler.epoch].append(int(row))
                return rows[row]

        return DataLoader(Recorded(), batch_sampler=sampler, collate_fn=loader.collate_fn,
                          generator=loader.generator)

    def recording_save_and_swap(model, tokenizer, out_dir):
        saves.append(str(out_dir))
        return save_and_swap(model, tokenizer, out_dir)

    train.make_dataloader = recording_make_dataloader
    modeling._save_and_swap = recording_save_and_swap

    config = Config(
        model_name_or_path=args.model, cache_dir=args.cache_dir, quiet=True, max_seq_length=64,
        learning_rate=2e-3, per_device_train_batch_size=args.per_device_batch, per_device_eval_batch_size=32,
        gradient_accumulation_steps=args.accumulation, num_train_epochs=args.epochs, warmup_ratio=0.1,
        logging_steps=1, eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True, seed=7,
    )
    labels = ["neg", "pos"]
    uci = data.load_source("uci_sentences", args.data_dir)
    splits = DatasetDict(train=uci["train"].shuffle(seed=0).select(range(args.train_rows)),
                         validation=uci["validation"].shuffle(seed=0).select(range(args.validation_rows)))
    model, tokenizer = modeling.load_model_and_tokenizer(config, labels)
    # No dropout: every process would draw the same masks from the same seed, where one process draws fresh ones
    # per batch, and the comparison with a single process should show sharding and all-reduce, not dropout noise.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    tokenized = modeling.tokenize_splits(splits, tokenizer, config)
    result = train.train(config, model, tokenizer, tokenized, output_dir=args.out / "training", label_names=labels)
    modeling.save_model(model, tokenizer, args.out / "model")

    evaluations = [row for row in result.history if "eval_loss" in row]
    ids = tokenized["train"]["id"][:]
    atomic_write_json(args.out / f"rank-{state.process_index}.json", {
        "rank": state.process_index,
        "world_size": state.num_processes,
        "backend": state.backend,
        "seen": {str(epoch): [ids[row] for row in rows] for epoch, rows in sorted(seen.items())},
        "saves": saves,
        "global_step": result.global_step,
        "final_eval": {k: v for k, v in evaluations[-1].items() if k != "eval_examples_per_second"},
        "train_ids": ids,
    })


if __name__ == "__main__":
    main()
