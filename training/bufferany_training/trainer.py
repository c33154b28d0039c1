"""The training loop: one process per GPU (torchrun) or a single process, checkpoints, logs.

A run folder holds `config.toml` (what it trained with), `logs/` (TensorBoard), `checkpoints/`
and, at the end, `temporal.safetensors` + `temporal.json`: the weights the render CLI and the
predictors load. Starting a run in a folder that has checkpoints continues from the latest one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from bufferany_core.atomic import atomic_write
from bufferany_core.flow import adjacent_flows, load_flow_estimator
from bufferany_core.models.weights import parse_weights_arg
from bufferany_training import distributed
from bufferany_training.checkpoint import (
    latest_checkpoint,
    load_optimizer_and_rng,
    rng_state,
    save_checkpoint,
)
from bufferany_training.checkpointing import enable_gradient_checkpointing
from bufferany_training.config import OptimSection, TrainConfig, to_toml
from bufferany_training.data import ClipDataset, StepSampler, collate_clips, discover_clips, worker_init

FINAL_WEIGHTS = "temporal.safetensors"


def build_task(config: TrainConfig):
    if config.task == "depth":
        from bufferany_training.depth_task import DepthTask

        return DepthTask(config)
    from bufferany_training.normal_task import NormalTask

    return NormalTask(config)


def train(
    config: TrainConfig, *, data: Path, out: Path, say: Callable[[str], None] = print
) -> Path:
    """Train (or continue training) into `out`; returns the final weights file."""
    context = distributed.setup(config.run.device)
    try:
        return _train(config, Path(data), Path(out), context, say if context.is_main else lambda _: None)
    finally:
        distributed.teardown(context)


def _train(config: TrainConfig, data: Path, out: Path, ctx: distributed.Context, say) -> Path:
    torch.manual_seed(config.seed)  # identical fresh temporal blocks on every rank
    clips = discover_clips(data)
    task = build_task(config)
    params = task.trainable_parameters()
    optimizer = torch.optim.AdamW(
        params, lr=config.optim.lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
    )
    start = 0
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None:
        task.load_weights(checkpoint.weights)
        load_optimizer_and_rng(checkpoint, optimizer, rank=ctx.rank)
        start = checkpoint.step
        if checkpoint.state.get("config") != json.loads(json.dumps(config.to_dict())):
            say(f"note: {out} was started with another configuration; continuing with this one")
        say(f"Resuming {out} from step {start} ({checkpoint.folder.name})")
    if config.run.gradient_checkpointing:
        enable_gradient_checkpointing(task.model)
    task.objective.to(ctx.device)
    task.train_mode()
    module = task.objective
    if ctx.distributed:
        module = DistributedDataParallel(
            task.objective,
            device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
            broadcast_buffers=False,  # no buffer changes while training
            find_unused_parameters=config.model.train_head,  # the DPT head has layers it never uses
        )
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        text = to_toml(config)
        atomic_write(out / "config.toml", lambda tmp: tmp.write_text(text))

    flow_in_loader = config.flow.backend == "dis"
    estimator = None
    if not flow_in_loader:
        estimator = load_flow_estimator(
            config.flow.backend, weights=parse_weights_arg(config.flow.weights or None), device=ctx.device
        )
    dataset = ClipDataset(clips, config.data, seed=config.seed, with_flows=flow_in_loader)
    loader = DataLoader(
        dataset,
        batch_size=config.optim.batch_size,
        sampler=StepSampler(
            start_step=start,
            total_steps=config.optim.iterations,
            batch_size=config.optim.batch_size,
            rank=ctx.rank,
            world_size=ctx.world_size,
        ),
        num_workers=config.data.workers,
        collate_fn=collate_clips,
        worker_init_fn=worker_init if config.data.workers else None,
        pin_memory=ctx.device.type == "cuda",
        # Workers start from a clean process: forking one whose OpenCV or OpenMP thread pools have
        # run (flows, the model) can deadlock the child.
        multiprocessing_context=_worker_context() if config.data.workers else None,
        prefetch_factor=2 if config.data.workers else None,
    )
    amp = (
        functools.partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)
        if ctx.device.type == "cuda" and config.run.precision == "bf16"
        else contextlib.nullcontext
    )
    writer = _summary_writer(out / "logs") if ctx.is_main else None
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.optim.iterations,
        initial=start,
        desc=f"train {config.task}",
        unit="step",
        disable=not (ctx.is_main and config.run.progress),
        dynamic_ncols=True,
    )
    say(
        f"Training {config.model.name} on {len(clips)} clip(s) from {data}: steps {start}-{config.optim.iterations}, "
        f"{ctx.world_size} rank(s) x {config.optim.batch_size} clip(s), device {ctx.device.type}"
    )
    step = start
    try:
        for step, batch in enumerate(loader, start=start + 1):
            batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
            if estimator is not None:
                batch["flows_fw"], batch["flows_bw"] = _flows(batch["frames"], estimator)
            log = step % config.run.log_every == 0 or step == config.optim.iterations
            metrics = task.step(module, batch, amp=amp, log=log)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.optim, step)
            if config.optim.grad_clip:
                metrics["optim/grad_norm"] = torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            if log:
                averaged = distributed.mean_over_ranks(ctx, metrics)
                bar.set_postfix(loss=f"{averaged['loss/total']:.4g}", stable=f"{averaged['loss/stable']:.4g}")
                if writer is not None:
                    for key, value in averaged.items():
                        writer.add_scalar(key, value, step)
                    writer.add_scalar("optim/lr", optimizer.param_groups[0]["lr"], step)
            if step % config.run.checkpoint_every == 0 or step == config.optim.iterations:
                _save(task, optimizer, ctx, out, step, config)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    final = out / FINAL_WEIGHTS
    if ctx.is_main:
        task.save_weights(final, provenance={"trained_steps": step, "training_data": str(data)})
        say(f"Temporal weights written: {final}")
    distributed.barrier(ctx)
    return final


def _save(task, optimizer, ctx: distributed.Context, out: Path, step: int, config: TrainConfig) -> None:
    rng_states = distributed.gather_objects(ctx, rng_state())
    digests = distributed.gather_objects(ctx, weights_digest(task.trainable_parameters()))
    if len(set(digests)) > 1:  # DDP keeps replicas equal; anything else is a bug worth stopping for
        raise RuntimeError(f"step {step}: the ranks' weights have diverged (digests {digests})")
    if ctx.is_main:
        save_checkpoint(
            out,
            step=step,
            save_weights=lambda path: task.save_weights(path, provenance={"trained_steps": step}),
            optimizer=optimizer,
            rng_states=rng_states,
            extra={"config": config.to_dict(), "rank_weight_digests": digests},
            keep=config.run.keep_checkpoints,
        )
    distributed.barrier(ctx)


def learning_rate(optim: OptimSection, step: int) -> float:
    """The learning rate of step `step` (1-based) under `optim.schedule`."""
    if optim.schedule == "constant":
        return optim.lr
    return optim.lr * (1 + math.cos(math.pi * (step - 1) / optim.iterations)) / 2


def weights_digest(params: list[torch.nn.Parameter]) -> str:
    """sha256 of the parameters' bytes: equal on every rank while replicas agree."""
    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _flows(frames: torch.Tensor, estimator) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [adjacent_flows(clip, estimator) for clip in frames]  # per clip: (T-1, 2, h, w) twice
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _worker_context() -> str:
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _summary_writer(folder: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))
