"""The media flows: what happens to a media from upload to removal.

`upload` (spooled file → `ready`, undone on failure), `delete` (`deleting` → files →
row), `purge` (the one "objects, then row" step both of them and the reaper end with),
and `reaper` (finishes or undoes what crashes left).
"""
