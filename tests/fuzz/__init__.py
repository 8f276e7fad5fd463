"""Fuzzing of the firmware and host decoders (targets shared by tests, bench and atheris)."""
