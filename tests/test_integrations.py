"""Lightning and Hugging Face: real short runs of each framework with ShrinkageLoss, MC
prediction included (noise on although the frameworks predict in eval())."""

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import shrinkdrop as sd
from shrinkdrop.train import ShrinkageLoss


def _clf_data(n=128, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    return X, y


def test_lightning_module_trains_and_predicts_by_mc():
    L = pytest.importorskip("lightning")
    from shrinkdrop.integrations.lightning import ShrinkageModule

    X, y = _clf_data()
    torch.manual_seed(0)
    for noise in (sd.nn.UnitNoise(sd.noise.Bernoulli(0.7)), nn.Dropout(0.3)):
        model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), noise, nn.Linear(32, 3))
        loss = ShrinkageLoss("categorical", objective="marginal_map", samples=3, sigma0=1.0,
                             n=len(X))
        module = ShrinkageModule(model, loss, lr=2e-2, val_samples=4, predict_samples=16)
        trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            accelerator="cpu", devices=1, num_sanity_val_steps=0)
        train = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
        val = DataLoader(TensorDataset(X[:64], y[:64]), batch_size=64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lightning's hints about workers / logging
            trainer.fit(module, train, val)
            val_ll = float(trainer.callback_metrics["val_ll"])
            preds = trainer.predict(module, DataLoader(TensorDataset(X[:40], y[:40]),
                                                       batch_size=20))
        assert trainer.global_step == 8
        assert val_ll > -0.9  # log(1/3) = -1.1 untrained
        p = torch.cat([r.probs for r in preds])
        mi = torch.cat([r.mutual_information for r in preds])
        assert p.shape == (40, 3) and torch.allclose(p.sum(1), torch.ones(40, dtype=p.dtype))
        # MC survives Lightning's eval(): the draws differ, so the mutual information is > 0
        assert float(mi.mean()) > 1e-3


def _tiny_bert():
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = t.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                       num_labels=2, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.1)
    model = t.BertForSequenceClassification(cfg)
    sd.convert(model, "bernoulli")
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 40, (64, 8), generator=g)
    labels = (ids[:, 0] < 20).long()
    return model, ids, labels


def test_hf_compute_loss_and_mc_logits_without_the_trainer():
    from shrinkdrop.integrations.hf import compute_loss, mc_logits

    model, ids, labels = _tiny_bert()
    loss = ShrinkageLoss("categorical", objective="marginal_map", samples=3, weight_decay=1e-3)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    first = None
    for step in range(12):
        idx = torch.arange(16) + 16 * (step % 4)
        value = compute_loss(loss, model, {"input_ids": ids[idx], "labels": labels[idx]})
        first = float(value.detach()) if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert float(value.detach()) < first
    model.eval()
    lp = mc_logits(model, {"input_ids": ids[:10], "labels": labels[:10]}, samples=16)
    assert lp.shape == (10, 2)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(10), rtol=1e-5, atol=1e-5)
    lp2 = mc_logits(model, {"input_ids": ids[:10]}, samples=16)
    assert not torch.equal(lp, lp2)  # MC draws, not the eval() mean
    with pytest.raises(ValueError, match="inputs has to hold 'labels'"):
        compute_loss(loss, model, {"input_ids": ids[:4]})


def test_hf_trainer_short_run_with_mc_predictions(tmp_path):
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate>=1.1")
    import transformers as t

    from shrinkdrop.integrations.hf import ShrinkageTrainer

    model, ids, labels = _tiny_bert()

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(ids)

        def __getitem__(self, i):
            return {"input_ids": ids[i], "labels": labels[i]}

    args = t.TrainingArguments(output_dir=str(tmp_path), max_steps=6,
                               per_device_train_batch_size=16, learning_rate=5e-3, report_to=[],
                               use_cpu=True, save_strategy="no", logging_strategy="no",
                               disable_tqdm=True)
    loss = ShrinkageLoss("categorical", objective="marginal_map", samples=2, sigma0=1.0, n=64)
    trainer = ShrinkageTrainer(model=model, args=args, train_dataset=DS(), shrinkage_loss=loss,
                               predict_samples=8)
    trainer.train()
    out = trainer.predict(DS())
    lp = torch.as_tensor(out.predictions)
    assert lp.shape == (64, 2)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(64), rtol=1e-4, atol=1e-4)


def test_a_missing_framework_names_the_extra():
    from shrinkdrop.errors import MissingExtraError
    from shrinkdrop.integrations import _require

    with pytest.raises(MissingExtraError, match=r"y needs X .*pip install 'shrinkdrop\[hf\]'"):
        _require("no_such_module_shrinkdrop", "hf", "X", "y")
