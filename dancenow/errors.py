"""The one error type a user sees as a single line, without a traceback.

It sits below every floor (it imports nothing), so `engines`, `realtime/pose` and the rest can
all raise it. The message names the problem and the fix.
"""


class DanceNowError(Exception):
    """A problem with the user's input or setup; the CLI prints it as one line and exits 2."""
