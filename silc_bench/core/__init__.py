"""The ground floor: errors, console output, paths, files, the registry, hashing and
torch.distributed plumbing. Nothing here imports from the rest of the package."""
