"""Which data source the keeper scores (no Lightning import: ``check_config`` runs in ``litplug config``)."""

from __future__ import annotations

from litplug.api import ConfigError, SourceSpec, has_answers, source_name


def pick_source(sources: list[SourceSpec], wanted: str | None) -> SourceSpec:
    """The source scored: the one named ``wanted``, else the first with a prompt/answer form."""
    answerable = [s for s in sources if has_answers(s)]
    if wanted is not None:
        named = [s for s in sources if source_name(s) == wanted]
        if not named:
            raise ConfigError(f"plugins.wise_ft.score_source '{wanted}' is not a data source of this run "
                              f"(sources: {', '.join(source_name(s) for s in sources)}).")
        if not has_answers(named[0]):
            raise ConfigError(f"plugins.wise_ft.score_source '{wanted}' has no prompt/answer form, so pass@k "
                              "cannot be scored on it; name a task source such as arithmetic.")
        return named[0]
    if not answerable:
        raise ConfigError("plugins.wise_ft.score_every_n_steps > 0 needs a prompt/answer data source to score "
                          "pass@k on, but this run has none; set score_every_n_steps: 0.")
    return answerable[0]
