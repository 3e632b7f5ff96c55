"""Rules every layer shares and none owns: the root of the error tree and the readers of what
people type (`key=value` pairs, durations). Imports nothing of the project, so state, bot,
flows and the composition root may all use it."""
