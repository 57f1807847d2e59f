"""Cost of the pause transforms next to a training step, measured side by side in one process (litplug-pause).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pause_overhead.py

Prints the time of the pretraining insertion and the finetuning append on a [32, 16] arithmetic batch,
as ratios to one forward+backward of the default litplug model, and the step-time ratio with M=4 pauses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from litplug_pause.finetune import append_pauses
from litplug_pause.pretrain import insert_pauses, pause_slots
from litplug_pause.vocab import add_pause_token
from omegaconf import OmegaConf

from litplug.api import ModelConfig, build_model, build_rows, get_task, to_model_batch, word_tokenizer


def seconds_per_call(fn: Callable[[], object], n: int) -> float:
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    task = get_task("arithmetic", {"digits": 2})
    tokenizer = word_tokenizer(task.vocab())
    pause_id = add_pause_token(tokenizer, "<pause>")
    rows = torch.from_numpy(build_rows(tokenizer, task.examples("train", 32, 0), 16, "arithmetic"))
    batch = to_model_batch({"tokens": rows[:, :-2], "n_prompt": rows[:, -2], "length": rows[:, -1]}, "answer")
    model = build_model(OmegaConf.structured(ModelConfig), tokenizer)
    generator = torch.Generator().manual_seed(0)

    def step(b: dict[str, torch.Tensor]) -> None:
        logits = model(b["input_ids"]).logits
        F.cross_entropy(logits.flatten(0, 1), b["labels"].flatten(), ignore_index=-100).backward()

    with_pauses = copy.copy(batch)
    append_pauses(with_pauses, pause_id, tokenizer.pad_token_id, 4)
    copy_cost = seconds_per_call(lambda: copy.copy(batch), 200)
    insert = seconds_per_call(lambda: insert_pauses(copy.copy(batch), pause_id, tokenizer.pad_token_id,
                                                    pause_slots(32, 16, 0.1, "fixed", generator)), 200) - copy_cost
    append = seconds_per_call(lambda: append_pauses(copy.copy(batch), pause_id, tokenizer.pad_token_id, 4),
                              200) - copy_cost
    plain_step = seconds_per_call(lambda: step(batch), 50)
    paused_step = seconds_per_call(lambda: step(with_pauses), 50)
    print(f"pretrain insertion / step: {insert / plain_step:.3f}  ({insert * 1e6:.0f} us)")
    print(f"finetune append (M=4) / step: {append / plain_step:.3f}  ({append * 1e6:.0f} us)")
    print(f"step with M=4 pauses / plain step: {paused_step / plain_step:.2f}")


if __name__ == "__main__":
    main()
