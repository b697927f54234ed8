"""Deployment artefacts: the container image build, the Helm chart, service files."""
