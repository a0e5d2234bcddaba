"""Test doubles for the cloud adapters: fakes of the providers' HTTP APIs that the real SDKs talk to."""
