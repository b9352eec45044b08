"""Offline checks of the deployment files: Dockerfiles, compose, Kubernetes, Terraform."""
