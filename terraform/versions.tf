terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }

  # Keep the state remote and locked, e.g. in an S3 bucket of your own:
  #   terraform init -backend-config="bucket=..." -backend-config="key=voxflow/terraform.tfstate" \
  #     -backend-config="region=..." -backend-config="use_lockfile=true"
  # after adding `backend "s3" {}` here (docs/deployment.md, "Terraform").
}
