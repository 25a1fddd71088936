"""Triage: how urgent is a parent's text about their baby's tremors, and why.

Public API: ``assess()`` returns a ``Decision``; ``load_rules()`` reads ``rules/*.yaml``.
"""

from smsbot.rulefiles import RuleFileError
from smsbot.triage.engine import Decision, assess
from smsbot.triage.model import RuleSet
from smsbot.triage.rules import load_rules
from smsbot.vocabulary import LEVELS, highest, severity

__all__ = ["LEVELS", "Decision", "RuleFileError", "RuleSet", "assess", "highest", "load_rules", "severity"]
