"""The container image build (``python deploy/image/build.py``)."""
