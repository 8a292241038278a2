"""Shell completion through click, for bash (run for real), zsh and fish."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import AZEXEC, base_env

pytestmark = pytest.mark.slow

BIN = str(Path(AZEXEC).parent)


def completion_script(shell: str) -> str:
    result = subprocess.run(
        [AZEXEC],
        env=base_env(_AZEXEC_COMPLETE=f"{shell}_source"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _azexec_completion azexec"),
        ("zsh", "#compdef azexec"),
        ("fish", "complete --no-files --command azexec"),
    ],
)
def test_completion_scripts_are_produced(shell: str, marker: str) -> None:
    """`_AZEXEC_COMPLETE={bash,zsh,fish}_source azexec` prints the script to source."""
    assert marker in completion_script(shell)


def bash_complete(
    words: list[str], tmp_path: Path, *, with_bash_completion: bool = False, **variables: str
) -> list[str]:
    """Source the bash script in a real bash and ask it to complete WORDS (the last one is being typed)."""
    script = tmp_path / "azexec.bash"
    script.write_text(completion_script("bash"))
    quoted = " ".join(f"'{w}'" for w in words)
    setup = "source /usr/share/bash-completion/bash_completion; " if with_bash_completion else ""
    program = (
        f"{setup}source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE='{' '.join(words)}'; COMP_POINT=${{#COMP_LINE}}; "
        '_azexec_completion azexec; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = base_env(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", **variables)
    result = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=30, check=True)
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completes_option_names(tmp_path: Path) -> None:
    """Typing --token-c<TAB> offers --token-cmd and --token-cmd-timeout."""
    assert sorted(bash_complete(["azexec", "--token-c"], tmp_path)) == ["--token-cmd", "--token-cmd-timeout"]


def test_bash_completes_all_sources(tmp_path: Path) -> None:
    """Typing --token<TAB> offers every --token-* source."""
    offered = set(bash_complete(["azexec", "--token"], tmp_path))
    assert {"--token-stdin", "--token-file", "--token-cmd", "--token-env"} <= offered


def test_bash_completes_variable_names_for_token_env(tmp_path: Path) -> None:
    """--token-env AZEXEC_DEMO_<TAB> offers the variables set whose names start so."""
    offered = bash_complete(["azexec", "--token-env", "AZURE_DEMO_T"], tmp_path, AZURE_DEMO_TOKEN="x")
    assert offered == ["AZURE_DEMO_TOKEN"]


def test_bash_hands_the_words_after_the_separator_to_commands_completion(tmp_path: Path) -> None:
    """azexec … -- git chec<TAB>: git's own completion answers, through bash-completion, as after sudo."""
    words = ["azexec", "--token-env", "T", "--", "git", "chec"]
    assert "checkout" in [word.strip() for word in bash_complete(words, tmp_path, with_bash_completion=True)]


def test_bash_completes_a_command_name_after_the_separator(tmp_path: Path) -> None:
    """azexec -- gi<TAB>: command names, even without bash-completion."""
    assert "git" in bash_complete(["azexec", "--", "gi"], tmp_path)
