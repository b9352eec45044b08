# The audio bucket (VOXFLOW_STORAGE_BACKEND=s3): private, encrypted, TLS only, reached from
# the nodes through the VPC's S3 endpoint. Voxflow deletes audio itself (DELETE /v1/jobs,
# VOXFLOW_AUDIO_RETENTION_DAYS), so the bucket keeps no versions.

locals {
  audio_bucket = coalesce(var.audio_bucket_name, "${local.name}-audio-${local.account_id}")
}

resource "aws_s3_bucket" "audio" {
  bucket = local.audio_bucket
}

resource "aws_s3_bucket_public_access_block" "audio" {
  bucket                  = aws_s3_bucket.audio.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "audio" {
  bucket = aws_s3_bucket.audio.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audio" {
  bucket = aws_s3_bucket.audio.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "audio" {
  bucket = aws_s3_bucket.audio.id

  # Parts of uploads that a crashed process never completed.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "audio_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.audio.arn,
      "${aws_s3_bucket.audio.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "audio" {
  bucket = aws_s3_bucket.audio.id
  policy = data.aws_iam_policy_document.audio_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.audio]
}

# ---- container images -------------------------------------------------------------------

locals {
  # One repository per image (docs/deployment.md); k8s refers to them as voxflow/<name>.
  images = [
    "ingest-api", "status-api", "transcription-worker", "transcription-worker-cuda", "llm-worker",
    "webhook-sender", "sweeper", "cli",
  ]
}

resource "aws_ecr_repository" "image" {
  for_each = toset(local.images)

  name                 = "voxflow/${each.value}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "image" {
  for_each = aws_ecr_repository.image

  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers after a week"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest tagged images"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*"]
          countType      = "imageCountMoreThan"
          countNumber    = var.image_retention_count
        }
        action = { type = "expire" }
      },
    ]
  })
}
