"""Private object storage behind one small interface (`local` files or `s3`)."""

from dispatch.storage.base import (
    MAX_UPLOAD_BYTES,
    Storage,
    UploadTarget,
    check_uploaded_object,
)

__all__ = ["MAX_UPLOAD_BYTES", "Storage", "UploadTarget", "check_uploaded_object"]
