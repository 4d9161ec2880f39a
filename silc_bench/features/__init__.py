"""The one encoding path (extract), prompts and classifier weights, and the
content-keyed feature cache."""
