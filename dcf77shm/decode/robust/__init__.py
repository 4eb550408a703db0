"""The robust decoder (the default): see :mod:`dcf77shm.decode.robust.decoder`."""
