"""Shell completion: click's, except that after `--` the words are COMMAND's, completed as COMMAND's own.

Loaded only when a shell asks for completion (_AZEXEC_COMPLETE is set): nothing of it costs a normal run.
"""

from __future__ import annotations

import os

from click.shell_completion import BashComplete, CompletionItem, add_completion_class

#: Before click's own: from the word after `--` on, hand over as sudo and env do (bash-completion's
#: _command_offset, which loads COMMAND's completion); without bash-completion, commands then files.
_HANDOVER = r"""
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == -- ]]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset $((i + 1))
            elif ((COMP_CWORD == i + 1)); then
                COMPREPLY=($(compgen -c -- "${COMP_WORDS[COMP_CWORD]}"))
            else
                COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
            fi
            return 0
        fi
    done
"""


class BashHandover(BashComplete):
    """Click's bash completion, handing the words after `--` to COMMAND's own completion."""

    source_template = BashComplete.source_template.replace(
        "%(complete_func)s() {\n", "%(complete_func)s() {" + _HANDOVER, 1
    )


def register() -> None:
    """Use BashHandover for bash."""
    add_completion_class(BashHandover, "bash")


def variable_names(incomplete: str) -> list[CompletionItem]:
    """Complete --token-env with the names of the variables set."""
    return [CompletionItem(name) for name in sorted(os.environ) if name.startswith(incomplete)]
