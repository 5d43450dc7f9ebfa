"""The controls: healthy models at their own library's init, each with its batches, loss and usual optimizer.

    >>> control = CONTROLS["llama"]
    >>> model = control.build()
    >>> inputs, targets = control.batch(0)
    >>> control.loss(model, inputs, targets).backward()

Transformers models come from their configs (hidden 128, 4 layers, vocabulary 512; `bert_deep` is the deep case:
24 layers of width 64; `t5_small` has T5-small's shape), so the weights are each library's own `_init_weights`. Language models train with AdamW
and a linear warm-up, the vision models with SGD and momentum (their papers' recipe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers as hf
from torch import Tensor, nn

from .data import images, tokens
from .vision import resnet18, vgg11_bn
from .word_lm import WordLM

VOCAB, LENGTH, BATCH = 512, 32, 8
SMALL = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4)
DECODER = dict(SMALL, num_key_value_heads=4)


@dataclass(frozen=True)
class Control:
    name: str
    family: str  # "decoder", "encoder", "encoder-decoder", "vision", "state-space", "word-lm"
    build: Callable[[], nn.Module]
    batch: Callable[[int], tuple[Any, Any]]  # step -> (inputs, targets); a dict of inputs is passed as kwargs
    loss: Callable[[nn.Module, Any, Any], Tensor]
    optimizer: Callable[[list], torch.optim.Optimizer]
    warmup: int = 10  # linear warm-up steps
    clip: float | None = None  # the recipe's gradient-norm clipping before each step
    steps: int | None = None  # training steps when the zoo's default is too few for this model to move its loss
    checkup: dict = field(default_factory=dict)  # extra gd.checkup arguments (targets, loss_fn)


def optimizer_for(control: Control, model: nn.Module) -> torch.optim.Optimizer:
    """The control's optimizer over `model`'s trainable parameters."""
    return control.optimizer([p for p in model.parameters() if p.requires_grad])


def train(control: Control, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int,
          on_step: Callable[[Tensor], object] | None = None) -> list[float]:
    """Train `model` for `steps` steps on batches 0..steps-1 with `optimizer` and the control's warm-up and
    clipping; `on_step(loss)` after each optimizer step. Returns the losses.

    >>> model = CONTROLS["llama"].build()
    >>> losses = train(CONTROLS["llama"], model, optimizer_for(CONTROLS["llama"], model), steps=100)
    """
    model.train()
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / control.warmup))
    losses = []
    for step in range(steps):
        inputs, targets = control.batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss = control.loss(model, inputs, targets)
        loss.backward()
        if control.clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), control.clip)
        optimizer.step()
        warmup.step()
        if on_step is not None:
            on_step(loss)
        losses.append(float(loss))
    return losses


def _hf(config: type, model: type, **settings) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return model(config(**settings))

    return build


def _lm_batch(step: int) -> tuple[dict, None]:
    ids = tokens(VOCAB, BATCH, LENGTH, step)
    return {"input_ids": ids, "labels": ids}, None


def _image_batch(step: int) -> tuple[dict, None]:
    x, y = images(BATCH * 4, step)
    return {"pixel_values": x, "labels": y}, None


def _output_loss(model: nn.Module, inputs: dict, targets: Any) -> Tensor:
    return model(**inputs).loss


def _adamw(params: list) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


def _sgd(params: list) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


def _hf_control(name: str, family: str, config: type, model: type, batch=_lm_batch, **settings) -> Control:
    return Control(name, family, _hf(config, model, **settings), batch, _output_loss, _adamw)


def _vision(name: str, build: Callable[[], nn.Module]) -> Control:
    def make() -> nn.Module:
        torch.manual_seed(0)
        return build()

    def batch(step: int) -> tuple[Tensor, Tensor]:
        return images(BATCH * 4, step)

    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return nn.functional.cross_entropy(model(x), y)

    return Control(name, "vision", make, batch, loss, _sgd, checkup={"loss_fn": nn.functional.cross_entropy})


def _word_lm(kind: str) -> Control:
    def make() -> nn.Module:
        torch.manual_seed(0)
        return WordLM(kind, VOCAB)

    def batch(step: int) -> tuple[Tensor, Tensor]:
        ids = tokens(VOCAB, BATCH, LENGTH + 1, step).T  # (time, batch)
        return ids[:-1], ids[1:]

    def loss_fn(logits: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))

    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(model(x), y)

    # AdamW at 3e-3 with its gradient norm clipped to 0.25 as in the word_language_model recipe (whose plain SGD at
    # lr 20 needs epochs, not the zoo's 100 steps, to move the loss)
    return Control(f"word_lm_{kind.lower()}", "word-lm", make, batch, loss,
                   lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01), clip=0.25,
                   steps=300 if kind == "LSTM" else None, checkup={"loss_fn": loss_fn})


def _converging_mlp() -> Control:
    """A 2-layer MLP that memorises 64 points with Adam over 10,000 full-batch steps (loss 1.4 -> ~1e-7): a long
    run that converges, whose late gradients are noise far below its early ones."""

    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 10, generator=generator), torch.randint(0, 4, (64,), generator=generator)

    def loss(model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.cross_entropy(model(inputs), targets)

    return Control("mlp_converging_10k", "long run", make, lambda step: (x, y), loss,
                   lambda params: torch.optim.Adam(params, lr=1e-2), warmup=1, steps=10_000,
                   checkup={"loss_fn": nn.functional.cross_entropy})


_IMAGE = dict(image_size=32, patch_size=4, num_channels=3, num_labels=10)
CONTROLS: dict[str, Control] = {c.name: c for c in [
    _hf_control("gpt2", "decoder", hf.GPT2Config, hf.GPT2LMHeadModel, vocab_size=VOCAB, n_embd=128, n_layer=4,
                n_head=4, n_positions=128, bos_token_id=0, eos_token_id=0),
    _hf_control("llama", "decoder", hf.LlamaConfig, hf.LlamaForCausalLM, **DECODER),
    _hf_control("qwen2", "decoder", hf.Qwen2Config, hf.Qwen2ForCausalLM, **DECODER),
    _hf_control("mistral", "decoder", hf.MistralConfig, hf.MistralForCausalLM, **DECODER),
    _hf_control("gemma", "decoder", hf.GemmaConfig, hf.GemmaForCausalLM, head_dim=32, **DECODER),
    _hf_control("phi", "decoder", hf.PhiConfig, hf.PhiForCausalLM, **DECODER),
    _hf_control("falcon", "decoder", hf.FalconConfig, hf.FalconForCausalLM, vocab_size=VOCAB, hidden_size=128,
                num_hidden_layers=4, num_attention_heads=4),
    _hf_control("gpt_neox", "decoder", hf.GPTNeoXConfig, hf.GPTNeoXForCausalLM, **SMALL),
    _hf_control("opt", "decoder", hf.OPTConfig, hf.OPTForCausalLM, vocab_size=VOCAB, hidden_size=128, ffn_dim=256,
                num_hidden_layers=4, num_attention_heads=4, word_embed_proj_dim=128),
    _hf_control("bert", "encoder", hf.BertConfig, hf.BertForMaskedLM, **SMALL),
    _hf_control("bert_deep", "encoder", hf.BertConfig, hf.BertForMaskedLM, vocab_size=VOCAB, hidden_size=64,
                intermediate_size=128, num_hidden_layers=24, num_attention_heads=4),
    _hf_control("distilbert", "encoder", hf.DistilBertConfig, hf.DistilBertForMaskedLM, vocab_size=VOCAB, dim=128,
                hidden_dim=256, n_layers=4, n_heads=4),
    _hf_control("roberta", "encoder", hf.RobertaConfig, hf.RobertaForMaskedLM, pad_token_id=1, **SMALL),
    _hf_control("t5", "encoder-decoder", hf.T5Config, hf.T5ForConditionalGeneration, vocab_size=VOCAB, d_model=128,
                d_ff=256, num_layers=4, num_heads=4, d_kv=32, decoder_start_token_id=0, pad_token_id=0),
    # T5-small's shape: its tied lm_head's gain sqrt(512) is undone by the functional rescale below it
    _hf_control("t5_small", "encoder-decoder", hf.T5Config, hf.T5ForConditionalGeneration, vocab_size=VOCAB,
                d_model=512, d_ff=2048, num_layers=6, num_heads=8, d_kv=64, decoder_start_token_id=0, pad_token_id=0),
    _hf_control("bart", "encoder-decoder", hf.BartConfig, hf.BartForConditionalGeneration, vocab_size=VOCAB,
                d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, max_position_embeddings=128),
    _hf_control("vit", "vision", hf.ViTConfig, hf.ViTForImageClassification, batch=_image_batch,
                hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, **_IMAGE),
    _hf_control("mamba", "state-space", hf.MambaConfig, hf.MambaForCausalLM, vocab_size=VOCAB, hidden_size=128,
                num_hidden_layers=4),
    _hf_control("rwkv", "state-space", hf.RwkvConfig, hf.RwkvForCausalLM, vocab_size=VOCAB, hidden_size=128,
                num_hidden_layers=4, attention_hidden_size=128, intermediate_size=256, context_length=128),
    _vision("resnet18", lambda: resnet18(width=16)),
    _vision("resnet_deep", lambda: resnet18(width=8, blocks=6)),  # 4 x 6 basic blocks: 50 conv layers
    _vision("vgg11_bn", lambda: vgg11_bn(width=16)),
    _word_lm("LSTM"),
    _word_lm("Transformer"),
    _converging_mlp(),
]}
