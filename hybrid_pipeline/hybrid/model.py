"""`HybridModel`: a frozen language model, a text->latent adapter, the TRM and a refiner, as one module.

Used as a Hugging Face model with its processor:

    model = HybridModel.from_pretrained("runs/joint/final")           # or from_config(HybridConfig(...))
    batch = model.processor(prompts, test_inputs)                      # HybridProcessor: text, grids -> tensors
    prediction = model.predict(batch)                                  # generate(), then the processor decodes
    model.save_pretrained("out")                                       # config, weights, processor files

One training step (`forward`), shapes with B batch, T prompt tokens, A answer tokens, L grid cells,
P TRM prefix slots, D TRM width, K prefix tokens:

    prompt [B,T] --backbone (frozen)--> hidden [B,T,D_llm] (+ the prompt's keys and values, prompt_first)
                                          (or precomputed: the backbone is frozen, so stored states are exact)
    hidden --TextToLatentAdapter--> z_H, z_L [B,L,D] (--VAE bottleneck, optional--)
        -> init_z_H / init_z_L (injected after the TRM's reset) and `conditioning` (added to the input
           injection of every z_L update, the only path with grad at H_cycles > 1)
    test input [B,L] --TRM, `supervision_steps` ACT steps--> logits [B,L,12], q_halt [B], latents [B,P+L,D]
        -> grid loss (stablemax CE per cell) + halting loss (BCE: "exactly right now")
    latents' L cells --refiner (attention pooling | slot refiner)--> prefix [B,K,D_llm] (+1 feedback token)
    backbone forward over the prefix and the answer, weights frozen, grad on the prefix -> LM loss on
        answer tokens only (causal: shifted CE; diffusion: masked positions, no shift), in `layout`:
        prompt_first  [prompt ; prefix ; answer]: only [prefix ; answer] runs, after the prompt's keys and
                      values from the frozen prompt forward above (causal backbones; the default there)
        prefix_first  [prefix ; prompt ; answer]: the whole sequence runs forward and backward (the only
                      layout of a masked-diffusion LM, whose prompt states depend on the prefix)

The loss is lm_weight * lm + grid_weight * grid + halt_weight * halt + kl_weight * kl. Grid and halt
losses are means over sequences and over supervision steps, so the weights compare with the LM's
per-token mean.

Batches are dicts of tensors (`HybridProcessor` builds them from text and grids; keys there), plus
optional
    prompt_hidden [B,T,D_llm] and prompt_kv [layers,2,B,H_kv,T,head_dim] (`encode_prompt`'s states,
        precomputed: the prompt forward is skipped; prompt_kv is read with prompt_first only),
    feedback [B, num_kinds] (problem counts, adds one prefix token; see adapters.feedback).

`save_pretrained` writes only what trains (adapters, TRM, refiner, feedback embedder, LoRA through
peft) and the processor; the backbone is named in config.json by name or path and loaded again by
`from_pretrained`. A checkpoint written before `layout` existed was trained prefix_first and loads so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adapters import FeedbackEmbedder, LatentToTextAdapter, SlotRefiner, TextToLatentAdapter, VAEAdapter
from adapters.text_to_latent import check_width
from hybrid_pipeline.backbones import load_backbone
from hybrid_pipeline.backbones.base import PromptStates
from hybrid_pipeline.processor import PROCESSOR_NAME, HybridProcessor
from hybrid_pipeline.trm import TRM, act_loss
from hybrid_pipeline.trm.checkpoint import CheckpointError, write_dir_atomically
from hybrid_pipeline.trm.losses import PAD_ID, exactly_right

from .config import LAYOUT_OF_OLD_CHECKPOINTS, HybridConfig
from .outputs import HybridGeneration, HybridOutput, HybridPrediction, ParameterReport

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LORA_DIR = "lora"


class HybridModel(nn.Module):
    """backbone + text_to_latent + trm + refiner (+ vae, + feedback embedder) with one training forward,
    generation, and save/load; `processor` (a `HybridProcessor`) prepares its batches and reads its answers."""

    def __init__(self, backbone: nn.Module, text_to_latent: TextToLatentAdapter, trm: TRM,
                 refiner: LatentToTextAdapter | SlotRefiner, vae: VAEAdapter | None = None,
                 feedback: FeedbackEmbedder | None = None, *, config: HybridConfig | None = None,
                 processor: HybridProcessor | None = None):
        super().__init__()
        config = config or HybridConfig(backbone=backbone.config)
        backbone.check_layout(config.layout)
        llm, D = backbone.hidden_size, trm.config.hidden_size
        # widths are checked here, at build time, so a mismatch names both widths before any forward
        text_to_latent.check_width(llm)
        refiner.check_width(llm)
        check_width(text_to_latent.config.trm_hidden, D, "TextToLatentAdapter TRM hidden size")
        check_width(refiner.config.trm_hidden, D, f"{type(refiner).__name__} TRM hidden size")
        if text_to_latent.config.num_positions not in (trm.config.seq_len, trm.config.total_len):
            raise ValueError(f"TextToLatentAdapter has {text_to_latent.config.num_positions} positions, the TRM "
                             f"{trm.config.seq_len} grid cells ({trm.config.total_len} with its prefix slots)")
        if vae is not None and vae.mu.in_features != 2 * D:
            raise ValueError(f"VAEAdapter input width {vae.mu.in_features} should be 2 x TRM hidden = {2 * D}")
        if feedback is not None:
            check_width(feedback.config.llm_hidden, llm, "FeedbackEmbedder LLM hidden size")

        self.backbone = backbone
        self.text_to_latent = text_to_latent
        self.trm = trm
        self.refiner = refiner
        self.vae = vae
        self.feedback = feedback
        kind = "slot" if isinstance(refiner, SlotRefiner) else "attention"
        # the stored config describes the parts actually held, so save_pretrained rebuilds them
        self.config = dataclasses.replace(
            config, backbone=backbone.config, trm=trm.config, text_to_latent=text_to_latent.config, refiner=kind,
            latent_to_text=refiner.config if kind == "attention" else config.latent_to_text,
            slot_refiner=refiner.config if kind == "slot" else config.slot_refiner,
            use_vae=vae is not None, vae_latent_dim=vae.mu.out_features if vae is not None else config.vae_latent_dim,
            feedback=feedback is not None,
            feedback_embedder=feedback.config if feedback is not None else config.feedback_embedder)
        self.processor = processor or HybridProcessor(backbone.tokenizer, canvas=self.config.canvas)
        if self.processor.canvas != self.config.canvas:
            raise ValueError(f"processor canvas {self.processor.canvas} does not match the TRM's "
                             f"{self.config.canvas}x{self.config.canvas}")

    # ---- building -----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: HybridConfig, *, backbone: nn.Module | None = None) -> HybridModel:
        """Load the backbone (unless given) and build fresh trainable parts, seeded by `config.seed`."""
        backbone = backbone if backbone is not None else load_backbone(config.backbone)
        return cls._build(config.with_widths(backbone.hidden_size), backbone)

    @classmethod
    def _build(cls, config: HybridConfig, backbone: nn.Module, processor: HybridProcessor | None = None) -> HybridModel:
        D = config.trm.hidden_size
        with torch.random.fork_rng(devices=[]):  # same seed, same weights; the caller's RNG is untouched
            torch.manual_seed(config.seed)
            text_to_latent = TextToLatentAdapter(config.text_to_latent)
            trm = TRM(config.trm)
            refiner = (SlotRefiner(config.slot_refiner) if config.refiner == "slot"
                       else LatentToTextAdapter(config.latent_to_text))
            # beta 1: the KL's weight is config.kl_weight alone
            vae = VAEAdapter(2 * D, config.vae_latent_dim, 2 * D, beta=1.0) if config.use_vae else None
            feedback = FeedbackEmbedder(config.feedback_embedder) if config.feedback else None
        model = cls(backbone, text_to_latent, trm, refiner, vae, feedback, config=config, processor=processor)
        return model._place_trainable_parts()

    def _place_trainable_parts(self) -> HybridModel:
        device = self.backbone.device
        for part in self._trainable_parts().values():
            part.to(device)
        return self

    def _trainable_parts(self) -> dict[str, nn.Module]:
        parts = {"text_to_latent": self.text_to_latent, "vae": self.vae, "trm": self.trm,
                 "refiner": self.refiner, "feedback": self.feedback}
        return {name: part for name, part in parts.items() if part is not None}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What an optimiser should get: every parameter with requires_grad (LoRA weights included)."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def backbone_trains(self) -> bool:
        return any(p.requires_grad for p in self.backbone.parameters())

    # ---- the pieces of a forward ------------------------------------------------------------

    def encode_prompt(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None = None) -> PromptStates:
        """The prompt through the backbone once: hidden states [B,T,D_llm] at layer
        `backbone.config.hidden_layer` and, with layout prompt_first, every layer's keys and values
        [layers,2,B,H_kv,T,head_dim] from the same forward.

        Without LoRA the backbone is frozen, so this runs without grad and may be stored (a batch's
        `prompt_hidden` and `prompt_kv`).
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.backbone_trains):
            return self.backbone.prompt_states(prompt_ids, prompt_mask, with_kv=self.config.layout == "prompt_first")

    def _prompt_states(self, batch: dict[str, torch.Tensor]) -> PromptStates:
        with_kv = self.config.layout == "prompt_first"
        stored = [k for k in ("prompt_hidden", "prompt_kv") if k in batch]
        if stored and self.backbone_trains:
            raise ValueError(f"precomputed {' and '.join(stored)} are exact only for a frozen backbone; with LoRA "
                             "the prompt's states change as it trains, so leave them out of the batch")
        if "prompt_hidden" in batch and (not with_kv or "prompt_kv" in batch):
            return PromptStates(batch["prompt_hidden"], batch["prompt_kv"] if with_kv else None)
        states = self.encode_prompt(batch["prompt_ids"], batch.get("prompt_mask"))
        if "prompt_hidden" in batch:  # stored hidden states, keys and values computed: use what was given
            states.hidden = batch["prompt_hidden"]
        return states

    def _reason(self, batch: dict[str, torch.Tensor], hidden: torch.Tensor, steps: int,
                generator: torch.Generator | None, with_loss: bool) -> dict[str, Any]:
        """Adapter -> TRM for `steps` supervision steps -> refiner prefix; losses when `with_loss`."""
        cfg = self.config
        z_H, z_L = self.text_to_latent(hidden, batch.get("prompt_mask"))  # each [B,L,D]
        kl = hidden.new_zeros((), dtype=torch.float32)
        if self.vae is not None:
            bottleneck = self.vae(torch.cat([z_H, z_L], dim=-1), generator=generator)  # [B,L,2D]
            z_H, z_L = bottleneck.sample.chunk(2, dim=-1)
            kl = bottleneck.kl
        conditioning = {"sum": lambda: z_H + z_L, "z_H": lambda: z_H, "z_L": lambda: z_L,
                        "none": lambda: None}[cfg.conditioning]()

        inputs = batch["inputs"]
        B = inputs.shape[0]
        trm_batch = {"inputs": inputs, "puzzle_identifiers": batch.get(
            "puzzle_identifiers", torch.zeros(B, dtype=torch.long, device=inputs.device))}
        if with_loss:
            trm_batch["labels"] = batch["labels"]
        carry = self.trm.initial_carry(trm_batch)
        grid_loss = halt_loss = kl.new_zeros(())
        q_halts = []
        for _ in range(steps):
            # Every call passes the injection: sequences that halted restart from it, the rest ignore it.
            carry, out = self.trm(carry, trm_batch, init_z_H=z_H, init_z_L=z_L, conditioning=conditioning,
                                  generator=generator)
            q_halts.append(out["q_halt_logits"])
            if with_loss:
                labels = carry.current_data["labels"]
                step = act_loss(out, labels, loss_type=cfg.loss_type, halt_loss_weight=0.0)
                grid_loss = grid_loss + step.loss / B
                halt_target = exactly_right(out["logits"], labels).to(out["q_halt_logits"].dtype)
                halt_loss = halt_loss + F.binary_cross_entropy_with_logits(out["q_halt_logits"], halt_target)

        P = self.trm.config.prefix_len
        dtype = next(self.refiner.parameters()).dtype
        cells_H, cells_L = out["z_H"][:, P:].to(dtype), out["z_L"][:, P:].to(dtype)  # each [B,L,D]
        stats = None
        if isinstance(self.refiner, SlotRefiner):
            prefix, stats = self.refiner(cells_H, cells_L, return_stats=True)  # [B,K,D_llm]
        else:
            prefix = self.refiner(cells_H, cells_L)  # [B,K,D_llm]
        if self.feedback is not None and "feedback" in batch:
            prefix = torch.cat([prefix, self.feedback(batch["feedback"]).to(prefix.dtype)], dim=1)  # [B,K+1,D_llm]
        return {"out": out, "prefix": prefix, "grid_loss": grid_loss / steps, "halt_loss": halt_loss / steps,
                "kl": kl, "slot_stats": stats, "q_halt_by_step": torch.stack(q_halts, dim=1)}  # [B,steps]

    def _lm_loss(self, batch: dict[str, torch.Tensor], prefix: torch.Tensor, prompt_kv: torch.Tensor | None,
                 generator: torch.Generator | None) -> torch.Tensor:
        """LM loss on the answer tokens with the prefix placed as `config.layout` says; grad reaches the
        prefix, not the frozen weights."""
        answer_ids = batch["answer_ids"]
        return self.backbone.answer_loss(prefix, batch.get("prompt_ids"), batch.get("prompt_mask"), answer_ids,
                                         batch.get("answer_mask", torch.ones_like(answer_ids)),
                                         layout=self.config.layout, prompt_kv=prompt_kv, generator=generator)

    # ---- training forward -------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor], *, generator: torch.Generator | None = None) -> HybridOutput:
        """One joint step's losses. `generator` drives the TRM's halting exploration, the VAE sample and
        the diffusion masking, so a seeded generator makes the step reproducible."""
        cfg = self.config
        needed = {"inputs", "labels"}
        stored = "prompt_hidden" in batch and (cfg.layout != "prompt_first" or "prompt_kv" in batch)
        if not stored or (cfg.lm_weight and cfg.layout == "prefix_first"):
            needed.add("prompt_ids")
        if cfg.lm_weight:
            needed.add("answer_ids")
        missing = sorted(needed - set(batch))
        if missing:
            raise ValueError(f"HybridModel.forward: batch lacks {', '.join(missing)} (has {', '.join(sorted(batch))})")

        states = self._prompt_states(batch)
        parts = self._reason(batch, states.hidden, cfg.supervision_steps, generator, with_loss=True)
        out, prefix = parts["out"], parts["prefix"]
        lm_loss = self._lm_loss(batch, prefix, states.kv, generator) if cfg.lm_weight else prefix.new_zeros(())

        terms = [(cfg.lm_weight, lm_loss), (cfg.grid_weight, parts["grid_loss"]),
                 (cfg.halt_weight, parts["halt_loss"]), (cfg.kl_weight if self.vae is not None else 0.0, parts["kl"])]
        # a zero weight leaves its term out entirely, so it can neither add gradient nor propagate a NaN
        loss = sum((w * t.float() for w, t in terms if w), start=prefix.new_zeros((), dtype=torch.float32))

        with torch.no_grad():
            labels = batch["labels"]
            valid = labels != PAD_ID
            right = out["logits"].argmax(-1) == labels
            metrics = {
                "loss": float(loss), "lm_loss": float(lm_loss), "grid_loss": float(parts["grid_loss"]),
                "halt_loss": float(parts["halt_loss"]), "kl": float(parts["kl"]),
                "cell_accuracy": float((right & valid).sum() / valid.sum().clamp(min=1)),
                "exact_accuracy": float(exactly_right(out["logits"], labels).float().mean()),
                "q_halt_mean": float(out["q_halt_logits"].mean()),
                "prefix_tokens": float(prefix.shape[1]),
            }
            if parts["slot_stats"] is not None:
                metrics["refiner_confidence"] = float(parts["slot_stats"].final_confidence.mean())
                metrics["refiner_steps"] = float(parts["slot_stats"].steps_taken.float().mean())
        return HybridOutput(loss=loss, lm_loss=lm_loss, grid_loss=parts["grid_loss"], halt_loss=parts["halt_loss"],
                            kl=parts["kl"], logits=out["logits"], q_halt_logits=out["q_halt_logits"],
                            prefix_embeds=prefix, metrics=metrics)

    # ---- inference ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], *, supervision_steps: int | None = None,
                 max_new_tokens: int | None = None, constrain_to_grid: bool = True, block_length: int = 32,
                 diffusion_steps: int | None = None, generator: torch.Generator | None = None,
                 **generate_kwargs) -> HybridGeneration:
        """The TRM's grid tokens and the LM's answer tokens for each row of `batch` (prompt_ids,
        prompt_mask, inputs; `prompt_hidden`/`prompt_kv` reused when given).

        The TRM runs `supervision_steps` steps (default `halt_max_steps`, as the paper evaluates); the
        LM answers with the refiner's prefix placed as `config.layout` says: greedy causal generation of
        at most `max_new_tokens` (default: a full canvas with newlines and EOS; with prompt_first the
        prompt's keys and values from the adapter's prompt forward are reused), or LLaDA-style
        unmasking of that many tokens rounded up to `block_length`, in `diffusion_steps` steps
        (default one per token). Reads no labels or answers.
        """
        was_training = self.training
        self.eval()
        try:
            states = self._prompt_states(batch)
            steps = supervision_steps or self.trm.config.halt_max_steps
            if steps > self.trm.config.halt_max_steps:
                raise ValueError(f"supervision_steps ({steps}) must be <= the TRM's halt_max_steps "
                                 f"({self.trm.config.halt_max_steps}): a further step restarts from the reset")
            parts = self._reason(batch, states.hidden, steps, generator, with_loss=False)
            out, prefix = parts["out"], parts["prefix"]
            side = self.config.canvas
            tokens = self.backbone.generate_answer(
                batch["prompt_ids"], batch.get("prompt_mask"), prefix, layout=self.config.layout,
                max_new_tokens=max_new_tokens or side * (side + 1) + 1,  # every row and its newline, then EOS
                constrain_to_grid=constrain_to_grid, prompt_kv=states.kv, generator=generator,
                block_length=block_length, diffusion_steps=diffusion_steps, **generate_kwargs)
        finally:
            self.train(was_training)
        return HybridGeneration(trm_tokens=out["logits"].argmax(-1), q_halt_logits=out["q_halt_logits"],
                                answer_tokens=tokens, prefix_embeds=prefix, q_halt_by_step=parts["q_halt_by_step"])

    def predict(self, batch: dict[str, torch.Tensor], **kwargs) -> HybridPrediction:
        """`generate` (same arguments), then the processor's decoding: texts and grids, with the reason
        wherever a grid could not be read."""
        generation = self.generate(batch, **kwargs)
        trm_grids, trm_errors = self.processor.decode_grids(generation.trm_tokens)
        texts, answer_grids, answer_errors = self.processor.decode_answers(generation.answer_tokens)
        return HybridPrediction(trm_tokens=generation.trm_tokens, q_halt_logits=generation.q_halt_logits,
                                trm_grids=trm_grids, trm_errors=trm_errors, answer_texts=texts,
                                answer_grids=answer_grids, answer_errors=answer_errors,
                                prefix_embeds=generation.prefix_embeds, q_halt_by_step=generation.q_halt_by_step)

    def encode(self, prompts: Sequence[str], test_inputs: Sequence[np.ndarray], **kwargs) -> dict[str, torch.Tensor]:
        """`self.processor(...)` (same arguments) on the backbone's device."""
        return self.processor(prompts, test_inputs, device=self.backbone.device, **kwargs)

    # ---- persistence --------------------------------------------------------------------------

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State of every part but the backbone (buffers such as the TRM's fixed initial latents included)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json, model.safetensors (trained parts), lora/ (peft adapter, when present) and
        the processor (processor_config.json, tokenizer files), atomically: a reader sees the old
        directory or the new one."""
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        config = self.config.to_dict()

        def write(scratch: Path) -> None:
            (scratch / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
            save_file(state, str(scratch / WEIGHTS_NAME), metadata={"format": "pt"})
            if self.backbone.config.lora:
                self.backbone.model.save_pretrained(str(scratch / LORA_DIR))  # peft writes the adapter only
            self.processor.save_pretrained(scratch)

        write_dir_atomically(directory, write)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, backbone: nn.Module | None = None) -> HybridModel:
        """Rebuild from `save_pretrained` output; the backbone is loaded from the config's name or path
        unless one is given (it must have the width the adapters were trained with).

        Written before layouts and processors existed, a checkpoint has no `layout` in config.json (it
        was trained prefix_first, and loads so) and no processor_config.json (the processor is built
        from the backbone's tokenizer and the config's canvas)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file():
            raise CheckpointError(f"{config_path}: missing (a hybrid checkpoint holds {CONFIG_NAME} and {WEIGHTS_NAME})")
        try:
            values = json.loads(config_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(values, dict) and "layout" not in values:
            values["layout"] = LAYOUT_OF_OLD_CHECKPOINTS
        config = HybridConfig.from_dict(values, source=str(config_path))
        try:
            state = load_file(str(weights_path))
        except FileNotFoundError:
            raise CheckpointError(f"{weights_path}: missing (a hybrid checkpoint holds {CONFIG_NAME} and "
                                  f"{WEIGHTS_NAME})") from None
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{weights_path}: corrupt or truncated safetensors file ({e})") from None

        backbone = backbone if backbone is not None else load_backbone(config.backbone)
        if config.backbone.lora and not backbone.config.lora:
            raise CheckpointError(f"{config_path}: the saved backbone has LoRA adapters, the given backbone has none; "
                                  "load it with lora=True or let from_pretrained load it")
        processor = None
        if (directory / PROCESSOR_NAME).is_file():
            processor = HybridProcessor.from_pretrained(directory, tokenizer=backbone.tokenizer)
            if processor.canvas != config.canvas:
                raise CheckpointError(f"{directory / PROCESSOR_NAME}: canvas {processor.canvas}, but {CONFIG_NAME} "
                                      f"has a {config.canvas}x{config.canvas} TRM canvas")
        model = cls._build(config, backbone, processor)  # saved widths as they are: a different backbone fails here
        expected = model.trainable_state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        mismatched = [f"{k} {tuple(v.shape)} in the file, {tuple(expected[k].shape)} for {CONFIG_NAME}"
                      for k, v in state.items() if k in expected and v.shape != expected[k].shape]
        if missing or unexpected or mismatched:
            detail = "; ".join(mismatched[:3] + [f"missing {k}" for k in missing[:3]]
                               + [f"unexpected {k}" for k in unexpected[:3]])
            raise CheckpointError(f"{weights_path}: weights do not match {CONFIG_NAME}: {detail}")
        model.load_state_dict(state, strict=False)  # strict over the trained parts, checked above
        lora = directory / LORA_DIR
        if config.backbone.lora:
            if not lora.is_dir():
                raise CheckpointError(f"{lora}: missing; config.json says the backbone has LoRA adapters")
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(model.backbone.model, load_peft_weights(str(lora), device=str(model.backbone.device)))
        return model

    # ---- reporting ----------------------------------------------------------------------------

    def parameter_report(self) -> ParameterReport:
        def counts(module: nn.Module) -> tuple[int, int]:
            trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
            return trainable, sum(p.numel() for p in module.parameters()) - trainable

        rows = [("backbone", *counts(self.backbone))]
        rows += [(name, *counts(part)) for name, part in self._trainable_parts().items()]
        notes = []
        if self.backbone.config.quantized:
            notes.append("backbone counts are of stored (quantised, packed) elements")
        if self.trm.puzzle_emb is not None:
            rows.append(("trm puzzle table*", self.trm.puzzle_emb.weight.numel(), 0))
            notes.append("* a buffer trained by sparse sign-SGD on the rows a batch uses, not by the dense optimiser")
        return ParameterReport(rows, notes)


__all__ = ["HybridConfig", "HybridGeneration", "HybridModel", "HybridOutput", "HybridPrediction", "HybridProcessor",
           "ParameterReport", "exactly_right"]
