# Every input, with a default that gives a working production-sized deployment in one
# region. Nothing secret is an input: the database password is made and kept by RDS in
# Secrets Manager, and the pods reach S3 through IRSA, without keys.

variable "region" {
  description = "AWS region of every resource."
  type        = string
  default     = "eu-west-1"
}

variable "environment" {
  description = "Name of this deployment (prod, staging...): resource names start with voxflow-<environment>."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "Use 2 to 16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (cost centre, owner...)."
  type        = map(string)
  default     = {}
}

# ---- network ----------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "Address range of the VPC; each availability zone gets a /19 private and a /22 public subnet of it."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zone_count" {
  description = "Availability zones to spread the subnets, nodes, database and Redis over (2 or 3)."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 3
    error_message = "EKS, RDS Multi-AZ and ElastiCache failover need at least two zones; the subnet plan has room for three."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheaper) instead of one per zone (survives the loss of a zone)."
  type        = bool
  default     = true
}

# ---- Kubernetes -------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes version (k8s/ is validated against this version's schemas in tests/deploy)."
  type        = string
  default     = "1.33"
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "Networks that may reach the Kubernetes API endpoint from the internet; narrow it to your office or VPN."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "kubernetes_namespace" {
  description = "Namespace the k8s/ overlays deploy Voxflow into (the IRSA role trusts its service account only)."
  type        = string
  default     = "voxflow"
}

variable "kubernetes_service_account" {
  description = "Service account of the Voxflow pods (k8s/base/serviceaccount.yaml), which gets the bucket role."
  type        = string
  default     = "voxflow"
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group (APIs, LLM worker, sweeper, cluster add-ons)."
  type        = list(string)
  default     = ["m6i.xlarge", "m7i.xlarge"]
}

variable "cpu_node_min" {
  description = "Fewest CPU nodes."
  type        = number
  default     = 2
}

variable "cpu_node_max" {
  description = "Most CPU nodes the cluster autoscaler may start."
  type        = number
  default     = 6
}

variable "cpu_node_disk_gb" {
  description = "Root volume of a CPU node in GiB (images and emptyDir volumes)."
  type        = number
  default     = 50
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group, each with gpus_per_node NVIDIA GPUs (g5.xlarge: one A10G, 24 GB)."
  type        = list(string)
  default     = ["g5.xlarge"]
}

variable "gpus_per_node" {
  description = "GPUs on one GPU node: tells the cluster autoscaler what a node of the empty group would offer."
  type        = number
  default     = 1
}

variable "gpu_node_max" {
  description = "Most GPU nodes; the group starts at zero and the cluster autoscaler adds nodes for pending GPU workers."
  type        = number
  default     = 8
}

variable "gpu_node_disk_gb" {
  description = "Root volume of a GPU node in GiB: the CUDA worker image with a baked large model is over 10 GB."
  type        = number
  default     = 100
}

# ---- PostgreSQL -------------------------------------------------------------------------

variable "db_engine_version" {
  description = "PostgreSQL major version of the RDS instance."
  type        = string
  default     = "17"
}

variable "db_instance_class" {
  description = "RDS instance class of the job database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "Initial database storage in GiB (gp3)."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage_gb" {
  description = "Ceiling for storage autoscaling in GiB."
  type        = number
  default     = 500
}

variable "db_multi_az" {
  description = "A standby in a second zone with automatic failover."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database; set false (and apply) before a deliberate destroy."
  type        = bool
  default     = true
}

# ---- Redis ------------------------------------------------------------------------------

variable "redis_engine_version" {
  description = "ElastiCache Redis OSS engine version of the broker."
  type        = string
  default     = "7.1"
}

variable "redis_node_type" {
  description = "ElastiCache node type of the broker (messages are only job ids: small is enough)."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_replicas" {
  description = "Read replicas next to the primary, in other zones; one or more enables automatic failover."
  type        = number
  default     = 1
}

# ---- storage and images -----------------------------------------------------------------

variable "audio_bucket_name" {
  description = "Name of the audio bucket; null makes voxflow-<environment>-audio-<account id>."
  type        = string
  default     = null
}

variable "image_retention_count" {
  description = "Tagged images kept per ECR repository; older ones are expired."
  type        = number
  default     = 50
}

# ---- the overlay ------------------------------------------------------------------------

variable "domain" {
  description = "DNS domain of the APIs: ingest.<domain> and status.<domain> (point both at the ingress load balancer)."
  type        = string
  default     = "voxflow.example.com"
}
