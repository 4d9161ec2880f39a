"""`silc-bench data get` / `data check`: the paper's datasets from their official archives.

catalogue (sources/*.yaml) → download (resumable, checksum-pinned) → archive (safe
extraction) → convert_* (annotation layouts) → check (published split sizes) → prepare
(all of it into a temporary folder, renamed into place only when whole).
"""
