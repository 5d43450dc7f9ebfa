"""The Hugging Face Trainer callback records the gradients the optimizer applies (accumulated, clipped),
equal to those a plain reference callback reads at `on_pre_optimizer_step`; tiny random BERT, no downloads."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import gradient_doctor as gd

transformers = pytest.importorskip("transformers", reason="needs transformers: pip install 'gradient-doctor[transformers]'")
from gradient_doctor.integrations.transformers import GradientDoctorCallback  # noqa: E402

STEPS = 4


def _model():
    torch.manual_seed(50)
    config = transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return transformers.BertForSequenceClassification(config)


class Data(torch.utils.data.Dataset):
    def __init__(self, n=16):
        g = torch.Generator().manual_seed(51)
        self.ids = torch.randint(0, 40, (n, 8), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class Reference(transformers.TrainerCallback):
    """Plain torch: each module's own parameters' float64 gradient norm, read before the optimizer steps."""

    def __init__(self):
        self.norms: list[dict[str, float]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        step = {}
        for name, module in model.named_modules():
            grads = [p.grad for p in module.parameters(recurse=False) if p.grad is not None]
            if grads:
                step[name] = math.sqrt(sum(float(g.double().square().sum()) for g in grads))
        self.norms.append(step)


def _train(tmp_path, callbacks, **kwargs):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=STEPS, per_device_train_batch_size=2, learning_rate=1e-3,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=52, dataloader_num_workers=0,
        disable_tqdm=True, **kwargs,
    )
    trainer = transformers.Trainer(model=_model(), args=args, train_dataset=Data(), callbacks=callbacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()


def test_records_the_clipped_accumulated_gradients(tmp_path):
    ref = Reference()
    doctor = GradientDoctorCallback(log_dir=tmp_path / "run", diagnose_on=())
    _train(tmp_path, [ref, doctor], gradient_accumulation_steps=2, max_grad_norm=0.05)
    run = gd.load(tmp_path / "run")
    np.testing.assert_array_equal(run.steps, np.arange(STEPS))
    names = list(ref.norms[0])
    assert "classifier" in names and "bert.encoder.layer.1.attention.self.query" in names
    for name in names:
        want = [step[name] for step in ref.norms]
        np.testing.assert_allclose(run.history("grad_norm", layer=name), want, rtol=1e-5, err_msg=name)
    total = np.sqrt(np.nansum(run.history("grad_norm") ** 2, axis=1))
    np.testing.assert_allclose(total, 0.05, rtol=1e-4)  # the clipped gradients, as the optimizer applies them
