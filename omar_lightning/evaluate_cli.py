"""``omar evaluate``: roll out a checkpoint's deterministic policies, summarise, render episodes.

    omar evaluate --ckpt_path runs/quickstart/checkpoints/last.ckpt --episodes 100 --render gif

Everything needed comes from the checkpoint: the networks, the task and its environment
settings, and the reference returns S_random / S_expert of the normalized score. Episode ``k``
is reset with seed ``seed + k``; with the defaults (the run's ``data.eval_episodes`` and
``data.eval_seed``) these are the episodes of the run's own evaluations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from omar_lightning.arguments import positive_int
from omar_lightning.atomic import atomic_write
from omar_lightning.data.format import dataset_path, normalized_score, read_metadata

RENDER_FORMATS = ("none", "gif", "mp4")


class EvaluateError(Exception):
    """Bad input to ``omar evaluate``; reported as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omar evaluate",
        description="Roll out the deterministic policies saved in a checkpoint; print mean return and "
        "normalized score (each +- std over episodes), write a JSON summary, optionally render episodes.",
    )
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True, help="checkpoint written by omar fit")
    parser.add_argument("--episodes", type=positive_int, help="episodes to play (default: the run's data.eval_episodes)")
    parser.add_argument("--seed", type=int, help="seed of episode 0; episode k uses seed + k (default: the run's data.eval_seed)")
    parser.add_argument("--out", help="JSON summary to write (default: <checkpoint>.eval.json next to the checkpoint); renders go next to it")
    parser.add_argument("--render", choices=RENDER_FORMATS, default="none", help="write the first --render-episodes episodes as GIF or MP4 (default: none)")
    parser.add_argument("--render-episodes", "--render_episodes", type=positive_int, default=1, help="episodes to render (default: 1)")
    parser.add_argument("--fps", type=positive_int, default=10, help="frames per second of renders (default: 10)")
    parser.add_argument("--num-envs", "--num_envs", type=positive_int, default=10, help="environment copies stepped together (default: 10)")
    return parser


# ---------------------------------------------------------------------------- checkpoint
def load_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The module (CPU, eval mode) and the evaluation record of a checkpoint; EvaluateError if unusable."""
    from omar_lightning.checkpoint_io import load_module
    from omar_lightning.errors import CheckpointError

    path = Path(path)
    try:
        model, checkpoint = load_module(path)
    except CheckpointError as error:
        raise EvaluateError(str(error)) from None
    record = _evaluation_record(path, checkpoint)
    record["updates"] = int(checkpoint.get("omar", {}).get("updates", model.updates))
    return model, record


def _evaluation_record(path: Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    for key, value in checkpoint.items():
        if isinstance(value, dict) and isinstance(value.get("evaluation"), dict):
            return dict(value["evaluation"])  # the data module's state (OfflineDataModule)
    # Checkpoints written before the data module saved its evaluation record: the settings are
    # in its hyperparameters and the reference returns in the dataset file's metadata.
    hp = checkpoint.get("datamodule_hyper_parameters")
    if not isinstance(hp, dict) or "task" not in hp:
        raise EvaluateError(f"{path} names no task: it was not written by omar fit")
    dataset = dataset_path(hp.get("path"), hp["task"], hp.get("tier", "random"), hp.get("env_kwargs"))
    try:
        meta = read_metadata(dataset)
        s_random, s_expert = float(meta["s_random"]), float(meta["s_expert"])
    except (OSError, KeyError, ValueError) as error:
        raise EvaluateError(
            f"{path} holds no reference returns (S_random, S_expert) and its dataset {dataset} cannot be read for them: {error}"
        ) from None
    return {
        "task": hp["task"],
        "env_kwargs": dict(hp.get("env_kwargs") or {}),
        "eval_episodes": int(hp.get("eval_episodes", 10)),
        "eval_seed": int(hp.get("eval_seed", 1_000_000)),
        "s_random": s_random,
        "s_expert": s_expert,
        "dataset": str(dataset),
        "tier": hp.get("tier"),
    }


# ---------------------------------------------------------------------------- rendering
def annotate(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` written in its top-left corner."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=max(12, frame.shape[0] // 40))
    except TypeError:  # Pillow without a scalable default font
        font = ImageFont.load_default()
    draw.text((8, 6), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def _mp4_writer():
    """A function writing frames to MP4, or EvaluateError when no encoder is installed."""
    import imageio.v3 as iio

    if find_spec("imageio_ffmpeg") is not None:
        return lambda path, frames, fps: iio.imwrite(path, frames, extension=".mp4", plugin="FFMPEG", fps=fps, macro_block_size=2)
    if find_spec("av") is not None:
        return lambda path, frames, fps: iio.imwrite(path, frames, extension=".mp4", plugin="pyav", codec="libx264", fps=fps)
    raise EvaluateError("--render mp4 needs an MP4 encoder: pip install imageio-ffmpeg (or av); --render gif needs none")


def write_render(path: Path, frames: list[np.ndarray], fmt: str, fps: int) -> None:
    import imageio.v3 as iio

    if fmt == "gif":
        iio.imwrite(path, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
    else:
        _mp4_writer()(path, np.stack(frames), fps)


# ---------------------------------------------------------------------------- command
def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from omar_lightning.envs.rollout import task_returns
    from omar_lightning.evaluation import policy_returns, render_episodes

    if args.render == "mp4":
        _mp4_writer()  # fail before playing any episode
    model, record = load_checkpoint(args.ckpt_path)
    episodes = args.episodes or int(record["eval_episodes"])
    seed = int(record["eval_seed"]) if args.seed is None else args.seed
    if args.render != "none" and args.render_episodes > episodes:
        raise EvaluateError(f"--render-episodes ({args.render_episodes}) must be at most --episodes ({episodes})")
    ckpt = Path(args.ckpt_path).resolve()
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + ".eval.json")
    if out.exists() and out.is_dir():
        raise EvaluateError(f"--out {out} is a directory; give a file name such as {out / 'summary.json'}")
    task, env_kwargs = record["task"], dict(record.get("env_kwargs") or {})
    s_random, s_expert = float(record["s_random"]), float(record["s_expert"])

    try:
        returns = policy_returns(model.actor, task, env_kwargs, episodes, seed, num_envs=args.num_envs)
    except ValueError as error:  # unknown task or environment settings
        raise EvaluateError(f"{ckpt}: {error}") from None
    normalized = normalized_score(returns, s_random, s_expert)
    summary: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "task": task,
        "env_kwargs": env_kwargs,
        "updates": record["updates"],
        "episodes": episodes,
        "seeds": [seed + k for k in range(episodes)],
        "returns": [float(r) for r in returns],
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "normalized_scores": [float(r) for r in normalized],
        "normalized_score_mean": float(normalized.mean()),
        "normalized_score_std": float(normalized.std()),
        "s_random": s_random,
        "s_expert": s_expert,
        "std": "population standard deviation over episodes",
        "renders": [],
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.render != "none":
            frames, result = render_episodes(model.actor, task, env_kwargs, args.render_episodes, seed)
            for k, (episode, ret) in enumerate(zip(frames, task_returns(result))):
                path = out.with_name(f"{out.stem}_seed{seed + k}.{args.render}")
                total = len(episode) - 1
                labelled = [annotate(f, f"seed {seed + k}   step {t}/{total}") for t, f in enumerate(episode)]
                write_render(path, labelled, args.render, args.fps)
                summary["renders"].append({"episode": k, "seed": seed + k, "path": str(path), "frames": len(episode), "return": float(ret)})
        text = json.dumps(summary, indent=2) + "\n"
        atomic_write(out, lambda f: f.write(text.encode()))
    except OSError as error:
        raise EvaluateError(f"cannot write the summary or renders next to {out} (--out): {error}") from None
    summary["summary"] = str(out)
    return summary


def report(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    lines = [
        f"checkpoint {summary['checkpoint']} ({summary['task']}, {summary['updates']} updates)",
        f"return {summary['return_mean']:.2f} ± {summary['return_std']:.2f} over {summary['episodes']} episodes (seeds {seeds[0]}..{seeds[-1]})",
        f"normalized score {summary['normalized_score_mean']:.1f} ± {summary['normalized_score_std']:.1f} "
        f"(S_random {summary['s_random']:.1f}, S_expert {summary['s_expert']:.1f})",
        f"summary {summary['summary']}",
    ]
    lines += [f"render {r['path']} ({r['frames']} frames, return {r['return']:.2f})" for r in summary["renders"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``omar evaluate``; bad input exits with one line on stderr and status 2."""
    args = build_parser().parse_args(argv)
    try:
        summary = evaluate(args)
    except EvaluateError as error:
        print(f"omar: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(report(summary))


if __name__ == "__main__":
    main()
