"""``trainer.strategy: fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) through Lightning's
``ModelParallelStrategy``, on every accelerator, CPU (gloo) included.

Lightning's own ``fsdp`` strategy wraps the model with FSDP1, which torch refuses without an
accelerator ("FSDP needs a non-CPU accelerator device") and Lightning refuses with
``accelerator=cpu``. FSDP2 runs on gloo, so the code path a GPU cluster uses is the one the CPU tests
run. Checkpoints hold the full (gathered) state, so a sharded run resumes on any number of processes
and its ``last.ckpt`` is the same file a single process writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litplug.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from lightning.pytorch.strategies import Strategy
    from torch.distributed.device_mesh import DeviceMesh

FSDP = "fsdp"


def make_strategy(t: Any) -> str | Strategy:
    """Lightning's strategy for ``trainer.*``: the name itself, except ``fsdp`` (see the module docstring)."""
    if str(t.strategy).lower() != FSDP:
        return t.strategy
    from lightning.pytorch.strategies import ModelParallelStrategy

    if not isinstance(t.devices, int) or isinstance(t.devices, bool) or t.devices < 1:
        raise ConfigError(f"Config key 'trainer.devices' is {t.devices!r}, but trainer.strategy=fsdp needs a number "
                          "of processes per node (e.g. trainer.devices=2).")
    # every process is one data-parallel shard (no tensor parallelism); full checkpoints, gathered on rank 0
    return ModelParallelStrategy(data_parallel_size=t.devices * t.num_nodes, tensor_parallel_size=1,
                                 save_distributed_checkpoint=False)


def fsdp_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules that become FSDP units, innermost first: each decoder layer (the classes the model lists
    in ``_no_split_modules``), the output projection (the losses call it outside the model's forward, see
    :mod:`litplug.head`), then the backbone (embeddings and final norm)."""
    layer_classes = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    if not layers:
        raise ConfigError(f"model: the {type(model).__name__} model lists no decoder-layer classes "
                          "(_no_split_modules), so litplug cannot shard it with trainer.strategy=fsdp; use ddp.")
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        raise ConfigError("model: trainer.strategy=fsdp needs untied input and output embeddings (the output "
                          "projection is sharded on its own, since the loss calls it apart from the model's forward). "
                          "Set model.tie_word_embeddings=false, or use trainer.strategy=ddp.")
    return [*layers, head, model.base_model]


def shard(module: Any, mesh: DeviceMesh) -> None:
    """Apply ``fully_shard`` to the model's units and to each plugin's auxiliary module (called from
    ``LitplugModule.configure_model`` on every rank, before the optimizer is built)."""
    from torch.distributed.fsdp import fully_shard

    for unit in fsdp_units(module.model):
        fully_shard(unit, mesh=mesh)
    for aux in module.aux.values():
        if any(p.requires_grad for p in aux.parameters()):
            fully_shard(aux, mesh=mesh)
