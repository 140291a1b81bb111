"""The names of what `sync` writes under a code prefix, in a module of their own:
the bundle makes them, and the repo checks measure the keys they make
(repo.key_length_problems) without importing the bundle, which imports the repo."""

HASH_LENGTH = 32  # hex digits of the content hash that names a code prefix
TARBALL = "sourcedir.tar.gz"
MANIFEST = "manifest.json"
