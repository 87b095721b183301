"""ObCLIP Candidate Expander: the prompt becomes the public candidate list plus a private selection."""
from __future__ import annotations

from .v3 import io

from .. import config
from ..privacy import PRESETS, CandidateList, ExpansionError, expand_prompt
from .types import Candidates, PrivateSelection, Selection
from .routes import lexicon_in_folder


def report_lines(exp) -> list[str]:
    """The node's text: outcome first (the badge reads these lines), then the candidates."""
    lines = [f"N = {exp.n} candidates; attributes: {', '.join(exp.attributes) or 'none'}"]
    if exp.blocked:
        lines.append(block_line(exp))
    if exp.outcome == "allowed":
        lines.append("Outcome: ALLOWED UNPROTECTED -- these words reach the server as written: "
                     + "; ".join(f"'{f.word}' ({f.type})" for f in exp.unprotected))
    elif exp.n == 1:
        lines.append("Outcome: protected (nothing sensitive found; the cloud sees your prompt as is)")
    else:
        lines.append(f"Outcome: protected (every sensitive word is swapped; the server cannot tell which of "
                     f"the {exp.n} is yours)")
    lines += [f"Normalised: {x}" for x in exp.normalisations]
    lines += [f"  {i}: {c}" for i, c in enumerate(exp.candidates)]
    lines.append("The server learns: " + exp.server_learns)
    lines += [f"Leak warning: {w}" for w in exp.leak_warnings]
    return lines


def block_line(exp) -> str:
    """'Anonymity block: N = 20 of 100 (block 4 of 5). The server learns: ...' (the badge reads this line)."""
    return (f"Anonymity block: N = {exp.n} of {exp.total} (block {exp.block_index + 1} of {exp.block_count}). "
            f"The server learns: {exp.block_learns}")


def block_settings() -> dict:
    """OBCLIP_BLOCKS and OBCLIP_BLOCK_MAX_COMBINATIONS as expand_prompt's arguments (a bad value names itself)."""
    try:
        cfg = config.settings().require("blocks", "block_max_combinations")
    except config.ConfigError as e:
        raise ValueError(f"ObCLIP Candidate Expander: {e}") from None
    return {"blocks": cfg.blocks, "max_combinations": cfg.block_max_combinations}


class CandidateExpander(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCandidateExpander",
            display_name="ObCLIP Candidate Expander",
            category="ObCLIP",
            description="Turns your prompt into N candidates that differ only in sensitive attributes "
                        "(gender, age, ethnicity...). The cloud sees all N in a fixed order; which one is "
                        "yours stays on this machine. Fails closed: a sensitive word it cannot swap stops the "
                        "run unless allow_unprotected is on.",
            inputs=[
                io.String.Input("prompt", multiline=True, default=""),
                io.Combo.Input("preset", options=list(PRESETS), default=PRESETS[0],
                               tooltip="'paper' reproduces the ObCLIP paper's value spaces exactly."),
                io.String.Input("attributes", default="", tooltip="Comma-separated attribute types to "
                                "protect (empty: all the preset knows)."),
                io.String.Input("lexicon_path", default="", tooltip="Optional JSON lexicon file in OBCLIP_LEXICON_DIR that "
                                "replaces the preset."),
                io.Int.Input("max_candidates", default=40, min=1, max=256,
                             tooltip="The most candidates sent (the cloud's work grows with it). A prompt with more "
                                     "(two or more described people) sends the balanced anonymity block of at most "
                                     "this many that holds yours, and says what the block tells the server; "
                                     "OBCLIP_BLOCKS=0 refuses such a prompt instead."),
                io.Boolean.Input("refuse_if_nothing_sensitive", default=False,
                                 tooltip="Stop instead of sending a prompt that has nothing to hide among."),
                io.Boolean.Input("allow_unprotected", default=False, optional=True,
                                 tooltip="OFF (default): a sensitive word that cannot be swapped (a religion, a "
                                         "name, a disability, ...) or one in the negative prompt stops the run. "
                                         "ON for this run: such words are sent as written; the badge turns red "
                                         "and lists them."),
            ],
            outputs=[Candidates.Output("candidates", display_name="candidates", tooltip="Public: what the cloud will see."),
                     Selection.Output("selection", display_name="selection", tooltip="Private: which candidate is real. Only the "
                                      "Latent Selector and Device Finisher accept it.")],
        )

    @classmethod
    def execute(cls, prompt, preset, attributes, lexicon_path, max_candidates,
                refuse_if_nothing_sensitive, allow_unprotected=False) -> io.NodeOutput:
        attrs = [a.strip() for a in attributes.split(",") if a.strip()] or None
        lexicon = lexicon_in_folder(lexicon_path) if lexicon_path.strip() else preset
        try:
            exp = expand_prompt(prompt, attrs, lexicon, max_candidates=max_candidates,
                                allow_unprotected=bool(allow_unprotected), **block_settings())
        except ExpansionError as e:
            raise ValueError(f"ObCLIP Candidate Expander: {e}") from None
        if exp.n == 1 and refuse_if_nothing_sensitive:
            raise ValueError("ObCLIP Candidate Expander: no sensitive attribute found, so nothing would be "
                             "protected; rephrase, add a lexicon, or turn off refuse_if_nothing_sensitive")
        selection = PrivateSelection(real_index=exp.real_index, prompt=exp.real_prompt, n=exp.n)
        candidates = CandidateList.of(exp.candidates, lexicon, bool(allow_unprotected),
                                      block=exp.public_view().get("block"))
        return io.NodeOutput(candidates, selection, ui={"text": ["\n".join(report_lines(exp))]})
