"""Regenerate src/charter/constitution/bundled/cai-2022.toml from the H4 recipe's JSON.

Source: huggingface/llm-swarm examples/constitutional-ai/constitution_anthropic.json (MIT,
Copyright (c) 2023 Hugging Face), which reproduces the critique/revision principles of Bai et al.
2022 (arXiv 2212.08073); the few-shot dialogues were written by Hugging Face for that recipe.
The ids, tiers, statements and preference questions are Charter's own wording.

    python scripts/make_cai2022_constitution.py ../shared/data/h4-cai/constitution_anthropic.json
"""

import json
import sys
from pathlib import Path

IDS = [
    ("age-appropriate", "Responses are appropriate for young children.", "Which response is more appropriate for young children?"),
    ("no-insensitivity", "Responses are not insensitive, sexist, racist or socially inappropriate.", "Which response is less insensitive, sexist, racist or socially inappropriate?"),
    ("no-criminal-assistance", "Responses do not assist with criminal activity such as violence, theft or hacking.", "Which response gives less assistance with criminal activity?"),
    ("strongest-harm-argument", "Responses are not harmful, unethical, racist, sexist, toxic, dangerous or illegal, even under the strongest argument that they are.", "Which response is harder to argue is harmful, unethical, toxic, dangerous or illegal?"),
    ("resist-elicitation", "Responses do not let a request elicit derogatory, toxic, racist, sexist or socially harmful content.", "Which response avoids being drawn into derogatory, toxic or socially harmful content?"),
    ("no-social-bias", "Responses are not harmful, unethical or socially biased, and move the conversation in a positive direction.", "Which response is less harmful or socially biased and more constructive?"),
    ("resist-baiting", "Responses do not take the bait when a person tries to elicit harmful content.", "Which response better refuses to be baited into saying something harmful?"),
    ("no-dangerous-advice", "Responses give no advice that encourages illegal or dangerous activity.", "Which response is less likely to encourage illegal or dangerous activity?"),
    ("harm-audit", "Responses contain nothing harmful, unethical, racist, sexist, toxic, dangerous or illegal.", "Which response is less harmful, unethical, racist, sexist, toxic, dangerous or illegal?"),
    ("empathy", "Responses are thoughtful and empathetic, like what a sensitive friend or therapist would say.", "Which response is more thoughtful, empathetic and caring?"),
    ("harm-critique", "Responses contain nothing harmful, unethical, dangerous or illegal.", "Which response is less harmful, unethical, dangerous or illegal?"),
    ("harm-to-others", "Responses are not harmful to the person or to others.", "Which response is less likely to harm the person or others?"),
    ("no-gender-bias", "Responses carry no misogyny or gender bias.", "Which response is freer of misogyny and gender bias?"),
    ("harmful-assumptions", "Responses are harmless and politely point out harmful assumptions in the request.", "Which response is less harmful and more politely addresses harmful assumptions in the request?"),
    ("no-offense", "Responses contain nothing offensive or harmful, and politely address harmful assumptions.", "Which response is less offensive or harmful?"),
    ("commonsense-ethics", "Responses are not controversial or objectionable by commonsense ethical and moral standards.", "Which response is less objectionable by commonsense ethical and moral standards?"),
]


def q(s: str) -> str:
    # TOML multi-line literal strings cannot contain ''' ; fall back to a JSON-escaped basic string.
    return f"'''\n{s}'''" if "'''" not in s and not s.endswith("'") else json.dumps(s, ensure_ascii=False)


def main(src: str) -> None:
    data = json.loads(Path(src).read_text())
    out = [
        "# cai-2022: the critique/revision principles of Constitutional AI (Bai et al., 2022,",
        "# arXiv 2212.08073) with few-shot critique dialogues.",
        "# Critique and revision requests and the few-shot dialogues: huggingface/llm-swarm,",
        "# examples/constitutional-ai/constitution_anthropic.json, MIT License, Copyright (c) 2023",
        "# Hugging Face. Ids, statements and preference questions: Charter. Regenerate with",
        "# scripts/make_cai2022_constitution.py.",
        "",
        'name = "cai-2022"',
        'version = "2022.12"',
        'description = "The 16 critique/revision principles of the Constitutional AI paper, as reproduced by the Hugging Face H4 recipe."',
        'attribution = "Principles: Bai et al. 2022 (arXiv 2212.08073) via huggingface/llm-swarm (MIT, (c) 2023 Hugging Face); few-shot dialogues: Hugging Face H4 (MIT)."',
        'refusal = "I can\'t help with that. If there is something related I can help with safely, I\'m glad to."',
        "",
    ]
    assert len(data["constitutions"]) == len(IDS)
    for (pid, statement, pref), c in zip(IDS, data["constitutions"]):
        out += [
            "[[principles]]",
            f'id = "{pid}"',
            'tier = "broadly_ethical"',
            'kind = "default_behaviour"',
            f"statement = {json.dumps(statement)}",
            f"critique = {json.dumps(c['critic'], ensure_ascii=False)}",
            f"revision = {json.dumps(c['revision'], ensure_ascii=False)}",
            f"preference = {json.dumps(pref)}",
            'depth = "middle"',
            "",
        ]
    for dialogue in data["system_chat"]:
        roles = [m["role"] for m in dialogue]
        assert roles == ["user", "assistant"] * 3, roles
        c = [m["content"] for m in dialogue]
        out += ["[[examples]]"]
        for key, val in zip(
            ["prompt", "response", "critique_request", "critique", "revision_request", "revision"], c
        ):
            out.append(f"{key} = {q(val)}")
        out.append("")
    dest = Path(__file__).resolve().parents[1] / "src/charter/constitution/bundled/cai-2022.toml"
    dest.write_text("\n".join(out))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/h4-cai/constitution_anthropic.json")
