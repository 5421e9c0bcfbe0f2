"""Back-translation through two tiny random Marian models: paraphrases end to end, and the augment step marking
its rows as bt."""
import io
import json

import pytest

from otherdata_utils.augment import augment, back_translate
from otherdata_utils.config import Config


@pytest.fixture(scope="module")
def tiny_marian_pair(tmp_path_factory: pytest.TempPathFactory, uci_sentences) -> tuple[str, str]:
    """Two tiny randomly initialised Marian models with a SentencePiece vocabulary trained here on UCI sentences."""
    import sentencepiece
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    root = tmp_path_factory.mktemp("marian")
    model = io.BytesIO()
    texts = uci_sentences["train"]["text"][:600]
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model,
                                             vocab_size=200, model_type="unigram", minloglevel=2)
    for name in ("source.spm", "target.spm"):
        (root / name).write_bytes(model.getvalue())
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(root / "source.spm"))
    vocab = {pieces.id_to_piece(i): i for i in range(pieces.get_piece_size())}
    vocab["<pad>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = MarianTokenizer(source_spm=str(root / "source.spm"), target_spm=str(root / "target.spm"),
                                vocab=str(root / "vocab.json"))
    folders = []
    for name, seed in (("en-xx", 0), ("xx-en", 1)):
        torch.manual_seed(seed)
        config = MarianConfig(
            vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=512,
            pad_token_id=vocab["<pad>"], eos_token_id=vocab["</s>"], decoder_start_token_id=vocab["<pad>"],
        )
        MarianMTModel(config).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders.append(str(root / name))
    return folders[0], folders[1]


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
@pytest.mark.usefixtures("one_torch_thread")
def test_back_translation_runs_end_to_end_with_tiny_random_marian_models(tiny_marian_pair):
    texts = ["Great phone, works well.", "Terrible service and cold food.", "ok", "A film that drags on and on."]
    out = back_translate(texts, *tiny_marian_pair, max_length=12, batch_size=3, quiet=True)
    assert len(out) == len(texts) and all(isinstance(t, str) for t in out)
    # greedy decoding: the same models give the same paraphrases again
    assert back_translate(texts, *tiny_marian_pair, max_length=12, batch_size=2, quiet=True) == out


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
@pytest.mark.usefixtures("one_torch_thread")
def test_augment_by_back_translation_marks_rows_as_bt(tiny_marian_pair, uci_sentences):
    small = uci_sentences["train"].select(range(12))
    config = Config(augmentation="back_translation", back_translation_models=list(tiny_marian_pair),
                    augment_fraction=0.5, quiet=True)
    augmented, report = augment(small, config)
    assert report.added == 6 and len(augmented) == 18
    assert set(augmented["source"][12:]) == {"uci_sentences+bt"}
    assert all(i.endswith("+bt1") for i in augmented["id"][12:])
    assert report.settings == {"forward_model": tiny_marian_pair[0], "backward_model": tiny_marian_pair[1]}
