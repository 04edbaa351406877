"""The package's command-line module: its ``merc_bench.cli`` entry point adds ``merc-bench lmf-size``.

merc-bench imports this module at every start-up (``merc-bench --help`` included) to list its
commands, so it stays light: typer and merc-bench's error class only. A command that needs the
plugin's components or PyTorch imports them inside its function, where they cost only when it runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from merc_bench import UserError, hookimpl

MODALITY_COUNTS = (1, 2, 3)  # text, audio, visual: any non-empty subset


def lmf_parameters(*, hidden_size: int, rank: int, modalities: int) -> int:
    """LMF's parameters (Liu et al., ACL 2018, eq. 5): per modality r factors of (H + 1) × H, λ (r), bias (H)."""
    return modalities * rank * (hidden_size + 1) * hidden_size + rank + hidden_size


def tensor_fusion_parameters(*, hidden_size: int, modalities: int) -> int:
    """The full tensor fusion LMF factorises: one weight of (H + 1)^M × H, and a bias (H)."""
    return (hidden_size + 1) ** modalities * hidden_size + hidden_size


@hookimpl
def merc_bench_cli_commands(app: typer.Typer) -> None:
    @app.command("lmf-size")
    def lmf_size(
        hidden_size: Annotated[int, typer.Option(help="H, the model's hidden size", min=1)] = 64,
        rank: Annotated[int, typer.Option(help="r, the LMF rank")] = 4,
        modalities: Annotated[int, typer.Option(help="how many modalities are fused (1-3)")] = 3,
    ) -> None:
        """Parameters of the example's LMF fuser against the full tensor fusion it factorises."""
        if modalities not in MODALITY_COUNTS:
            raise UserError(f"--modalities {modalities} is not a number of modalities merc-bench fuses; give 1, "
                            "2 or 3 (text, audio, visual).")
        if not 1 <= rank <= 64:
            raise UserError(f"--rank {rank} is outside the LMF fuser's range 1-64 (its config's rank field).")
        low = lmf_parameters(hidden_size=hidden_size, rank=rank, modalities=modalities)
        full = tensor_fusion_parameters(hidden_size=hidden_size, modalities=modalities)
        typer.echo(f"LMF rank {rank}: {low:,} parameters; full tensor fusion: {full:,} ({full / low:.1f}x)")
