"""azexec: run a command with an Azure access token in its environment only."""
