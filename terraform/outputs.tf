# What the k8s/overlays/prod-gpu overlay and the operator need. `kustomize_env` is the
# overlay's terraform.env; the rest goes into kubectl, Helm and the Secret voxflow-secrets
# (docs/deployment.md). None of these is secret: the database password stays in Secrets
# Manager, and the pods reach the bucket through IRSA.

locals {
  image_registry = "${local.account_id}.dkr.ecr.${var.region}.amazonaws.com/voxflow"

  # Keys and values of k8s/overlays/prod-gpu/terraform.env.
  kustomize_env = {
    AWS_REGION        = var.region
    IMAGE_REGISTRY    = local.image_registry
    S3_BUCKET         = aws_s3_bucket.audio.bucket
    VOXFLOW_ROLE_ARN  = aws_iam_role.pods.arn
    INGEST_HOST       = "ingest.${var.domain}"
    STATUS_HOST       = "status.${var.domain}"
    PUBLIC_STATUS_URL = "https://status.${var.domain}"
  }
}

output "region" {
  description = "AWS region of the deployment."
  value       = var.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "configure_kubectl" {
  description = "Command that adds the cluster to your kubeconfig."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${aws_eks_cluster.this.name}"
}

output "image_registry" {
  description = "Prefix of the ECR repositories: push voxflow/<image>:<version> as <this>/<image>:<version>."
  value       = local.image_registry
}

output "ecr_repository_urls" {
  description = "ECR repository URL of each image."
  value       = { for name, repo in aws_ecr_repository.image : name => repo.repository_url }
}

output "audio_bucket" {
  description = "The audio bucket (VOXFLOW_S3_BUCKET)."
  value       = aws_s3_bucket.audio.bucket
}

output "voxflow_role_arn" {
  description = "IAM role of the Voxflow service account (IRSA annotation eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.pods.arn
}

output "cluster_autoscaler_role_arn" {
  description = "IAM role for the cluster autoscaler's service account kube-system/cluster-autoscaler."
  value       = aws_iam_role.cluster_autoscaler.arn
}

output "gpu_node_group" {
  description = "Name of the GPU node group (scales from zero)."
  value       = aws_eks_node_group.gpu.node_group_name
}

output "database_address" {
  description = "Host name of the PostgreSQL instance (TLS required)."
  value       = aws_db_instance.this.address
}

output "database_port" {
  description = "Port of the PostgreSQL instance."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Database that Voxflow uses."
  value       = aws_db_instance.this.db_name
}

output "database_username" {
  description = "Master user name; its password is in the secret database_master_secret_arn."
  value       = aws_db_instance.this.username
}

output "database_master_secret_arn" {
  description = "Secrets Manager secret (JSON with `username` and `password`) that RDS keeps and rotates."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "redis_url" {
  description = "VOXFLOW_REDIS_URL for the broker (TLS, no password: see docs/deployment.md to add AUTH)."
  value       = "rediss://${aws_elasticache_replication_group.this.primary_endpoint_address}:6379/0?ssl_cert_reqs=required"
}

output "kustomize_env" {
  description = "Contents of k8s/overlays/prod-gpu/terraform.env: terraform output -raw kustomize_env > k8s/overlays/prod-gpu/terraform.env"
  value       = join("", [for key in sort(keys(local.kustomize_env)) : "${key}=${local.kustomize_env[key]}\n"])
}
