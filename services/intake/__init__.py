"""Intake: takes documents in from other systems and hands their outcomes back."""
