"""Output files that appear whole or not at all."""

import contextlib
import os
import uuid


@contextlib.contextmanager
def replaced_on_success(path):
    """A binary file beside ``path``, moved onto it if the block succeeds, else removed.

    A failed write thus leaves neither a truncated file nor a changed
    ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(folder, f".skmtl-{uuid.uuid4().hex}.part")
    # "xb" honours the umask, as a file written in place would (tempfile.mkstemp makes 0600)
    handle = open(tmp_path, "xb")
    try:
        with handle:
            yield handle
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
