"""Pure metric maths (numpy only). Nothing here imports models, data or tasks."""
