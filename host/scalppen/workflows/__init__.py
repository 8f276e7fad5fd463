"""What people do with a pen, step by step: reach it, pair, sync its log, run a session.

Used by the command line and by ``scalppen demo``; no printing here (callbacks report
progress), so each step can be tested against the virtual pen.
"""
