"""ObCLIP Candidate Expander: the prompt becomes the public candidate list plus a private selection."""
from __future__ import annotations

from .v3 import io

from ..privacy import PRESETS, ExpansionError, expand_prompt
from .types import Candidates, PrivateSelection, Selection


class CandidateExpander(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCandidateExpander",
            display_name="ObCLIP Candidate Expander",
            category="ObCLIP",
            description="Turns your prompt into N candidates that differ only in sensitive attributes "
                        "(gender, age, ethnicity...). The cloud sees all N in a fixed order; which one is "
                        "yours stays on this machine.",
            inputs=[
                io.String.Input("prompt", multiline=True, default=""),
                io.Combo.Input("preset", options=list(PRESETS), default=PRESETS[0],
                               tooltip="'paper' reproduces the ObCLIP paper's value spaces exactly."),
                io.String.Input("attributes", default="", tooltip="Comma-separated attribute types to "
                                "protect (empty: all the preset knows)."),
                io.String.Input("lexicon_path", default="", tooltip="Optional JSON lexicon file that "
                                "replaces the preset."),
                io.Int.Input("max_candidates", default=32, min=1, max=256),
                io.Boolean.Input("refuse_if_nothing_sensitive", default=False,
                                 tooltip="Stop instead of sending a prompt that has nothing to hide among."),
            ],
            outputs=[Candidates.Output("candidates", display_name="candidates", tooltip="Public: what the cloud will see."),
                     Selection.Output("selection", display_name="selection", tooltip="Private: which candidate is real. Only the "
                                      "Latent Selector and Device Finisher accept it.")],
        )

    @classmethod
    def execute(cls, prompt, preset, attributes, lexicon_path, max_candidates,
                refuse_if_nothing_sensitive) -> io.NodeOutput:
        attrs = [a.strip() for a in attributes.split(",") if a.strip()] or None
        try:
            exp = expand_prompt(prompt, attrs, lexicon_path.strip() or preset, max_candidates=max_candidates)
        except ExpansionError as e:
            raise ValueError(f"ObCLIP Candidate Expander: {e}") from None
        if exp.n == 1 and refuse_if_nothing_sensitive:
            raise ValueError("ObCLIP Candidate Expander: no sensitive attribute found, so nothing would be "
                             "protected; rephrase, add a lexicon, or turn off refuse_if_nothing_sensitive")
        lines = [f"N = {exp.n} candidates; attributes: {', '.join(exp.attributes) or 'none'}"]
        if exp.n == 1:
            lines.append("WARNING: nothing sensitive was found; the cloud sees your prompt as is.")
        lines += [f"  {i}: {c}" for i, c in enumerate(exp.candidates)]
        lines.append("The server learns: " + exp.server_learns)
        lines += [f"Leak warning: {w}" for w in exp.leak_warnings]
        selection = PrivateSelection(real_index=exp.real_index, prompt=exp.real_prompt, n=exp.n)
        return io.NodeOutput(tuple(exp.candidates), selection, ui={"text": ["\n".join(lines)]})
