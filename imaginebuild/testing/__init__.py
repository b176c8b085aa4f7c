"""Test helpers shipped with imaginebuild: a fake xAI server for rehearsals without a key."""
