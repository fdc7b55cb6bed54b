//! `cairn`: administer a Cairn cluster.

use anyhow::Context;
use cairn_cli::table;
use cairn_metadata_service::MetaClient;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Administer a Cairn cluster")]
struct Cli {
    /// The primary metadata service.
    #[arg(
        long,
        env = "CAIRN_META_URL",
        default_value = "http://127.0.0.1:7300",
        global = true
    )]
    meta_url: String,
    /// Cluster secret.
    #[arg(
        long,
        env = "CAIRN_CLUSTER_SECRET",
        hide_env_values = true,
        global = true
    )]
    secret: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Storage nodes: rack, state, usage, last heartbeat.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// The shard map: which shard owns which key range, and where.
    Shards {
        #[arg(long)]
        json: bool,
    },
    /// Node state changes (the failure detector's change feed).
    Events {
        /// Only changes after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long)]
        json: bool,
    },
    /// Give a directory its own shard, online: `cairn split photos/2024/`
    /// (a catalogue prefix: bucket, '/', key prefix).
    Split { prefix: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let secret = cli
        .secret
        .clone()
        .context("no cluster secret: pass --secret or set CAIRN_CLUSTER_SECRET")?;
    let client = MetaClient::connect(&cli.meta_url, &secret)
        .await
        .with_context(|| format!("connect to the metadata service at {}", cli.meta_url))?;
    match cli.command {
        Command::Nodes { json } => {
            let nodes = client.nodes().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                let now = now_ms();
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.to_string(),
                            n.rack.to_string(),
                            format!("{:?}", n.state).to_lowercase(),
                            table::bytes(n.used_bytes),
                            table::bytes(n.capacity_bytes),
                            format!(
                                "{:.1}s ago",
                                now.saturating_sub(n.last_heartbeat_ms) as f64 / 1000.0
                            ),
                            n.address.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(
                        &[
                            "NODE",
                            "RACK",
                            "STATE",
                            "USED",
                            "CAPACITY",
                            "HEARTBEAT",
                            "ADDRESS"
                        ],
                        &rows
                    )
                );
            }
        }
        Command::Shards { json } => {
            let map = client.shard_map();
            if json {
                println!("{}", serde_json::to_string_pretty(&map)?);
            } else {
                println!("shard map version {}", map.version);
                let rows: Vec<Vec<String>> = map
                    .shards
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.to_string(),
                            format!("{:?}", s.start),
                            s.end
                                .as_ref()
                                .map_or("(end)".to_owned(), |e| format!("{e:?}")),
                            s.owner.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(&["SHARD", "FROM", "TO", "OWNER"], &rows)
                );
            }
        }
        Command::Events { after, json } => {
            let events = client.events(after).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            e.sequence.to_string(),
                            e.at_ms.to_string(),
                            e.node.to_string(),
                            e.from
                                .map_or("(new)".to_owned(), |s| format!("{s:?}").to_lowercase()),
                            format!("{:?}", e.to).to_lowercase(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(&["SEQ", "AT_MS", "NODE", "FROM", "TO"], &rows)
                );
            }
        }
        Command::Split { prefix } => {
            let map = client.split(&prefix).await?;
            let shard = map.route(&prefix);
            println!(
                "{prefix:?} is now served by {} (map version {}), owner {}",
                shard.id, map.version, shard.owner
            );
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
