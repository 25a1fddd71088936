"""Triage: how urgent is a parent's text about their baby's tremors, and why.

Public API: ``assess()`` returns a ``Decision``; ``load_rules()`` reads ``rules/*.yaml``.
"""

from smsbot.rulefiles import RuleFileError
from smsbot.triage.engine import Decision, assess, highest, severity
from smsbot.triage.model import LEVELS, RuleSet
from smsbot.triage.rules import load_rules

__all__ = ["LEVELS", "Decision", "RuleFileError", "RuleSet", "assess", "highest", "load_rules", "severity"]
