"""Input limits shared by the tables and every place that validates input (SPEC §4)."""

CODE_MAX = 64  #: characters in a directory code or an external reference
NAME_MAX = 200  #: characters in a name or category
TITLE_MAX = 200  #: characters in an item's title (SPEC §4)
DESCRIPTION_MAX = 4000  #: characters in an item's description (SPEC §4)
REASON_MAX = 1000  #: characters in a reason (SPEC §4)
