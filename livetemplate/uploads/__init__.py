"""File uploads (section 1.9 of the protocol): declared with :class:`Upload`, taken by actions
through ``ctx.uploads(name)`` as :class:`UploadedFile` objects, shown by templates through
``lvt.uploads(name)`` and ``lvt.upload_error(name)``."""

from __future__ import annotations

from .config import PendingUpload, Presigned, Upload, UploadPart, UploadTooLarge
from .entries import UploadedFile, UploadStatus
from .manager import Uploads
from .protocol import completion_action

__all__ = [
    "PendingUpload",
    "Presigned",
    "Upload",
    "UploadPart",
    "UploadStatus",
    "UploadTooLarge",
    "UploadedFile",
    "Uploads",
    "completion_action",
]
