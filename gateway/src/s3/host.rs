//! Virtual-host-style addressing: `bucket.<base domain>` names the bucket;
//! any other host (an IP, `localhost`, the base domain itself) is path
//! style. s3s's own `SingleDomain` compares the Host header with its port
//! and treats unknown hosts as CNAME buckets, which breaks path-style
//! requests to `127.0.0.1:9000`.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

#[derive(Debug, Clone)]
pub struct BaseDomain {
    domain: String,
}

impl BaseDomain {
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
        }
    }
}

/// The host without a trailing `:port`.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

impl S3Host for BaseDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = strip_port(host);
        let bucket = name
            .len()
            .checked_sub(self.domain.len() + 1)
            .filter(|&at| {
                name.as_bytes()[at] == b'.' && name[at + 1..].eq_ignore_ascii_case(&self.domain)
            })
            .map(|at| &name[..at])
            .filter(|bucket| !bucket.is_empty());
        Ok(match bucket {
            Some(bucket) => VirtualHost::new(self.domain.as_str()).with_bucket(bucket),
            None => VirtualHost::new(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_of(host: &str) -> Option<String> {
        BaseDomain::new("s3.localhost")
            .parse_host_header(host)
            .expect("parses")
            .bucket()
            .map(str::to_owned)
    }

    #[test]
    fn only_subdomains_of_the_base_name_a_bucket() {
        assert_eq!(
            bucket_of("photos.s3.localhost:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(
            bucket_of("my.dotted.bucket.s3.localhost").as_deref(),
            Some("my.dotted.bucket")
        );
        assert_eq!(bucket_of("s3.localhost:9000"), None);
        assert_eq!(bucket_of("127.0.0.1:9000"), None);
        assert_eq!(bucket_of("localhost"), None);
        assert_eq!(bucket_of("evil-s3.localhost"), None);
    }
}
