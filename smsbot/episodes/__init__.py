"""A family's episodes at a clinic: from the first report to the close, and what happened in them.

``refresh`` brings an enrollment's episodes up to date from its texts; ``story_of`` reads
what happened in one; ``fhir.bundle_of`` exports it as a FHIR Bundle.
"""

from smsbot.episodes.story import Entry, Flag, Report, Story, covering, stories_of, story_of
from smsbot.episodes.tracking import CLOSED_BY_STAFF, CLOSED_QUIET, close_by_staff, episodes_of, refresh

__all__ = [
    "CLOSED_BY_STAFF",
    "CLOSED_QUIET",
    "Entry",
    "Flag",
    "Report",
    "Story",
    "close_by_staff",
    "covering",
    "episodes_of",
    "refresh",
    "stories_of",
    "story_of",
]
