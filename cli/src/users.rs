//! `cairn user …`: S3 users and their access keys in the catalogue.
//!
//! Keys are made here: an access key of 20 of `[A-Z0-9]` and a secret of
//! 40 letters and digits (AWS's shapes), the secret sealed under the
//! cluster secret before it leaves this process. A secret is printed once,
//! when its key is created, and never again: nothing can list it.

use anyhow::{Context, bail};
use cairn_cli::table;
use cairn_meta_api::MetaClient;
use cairn_meta_api::users::{NewKey, SECRET_PURPOSE, UserChange, UserRecord};
use cairn_service::ClusterSecret;
use rand::Rng;
use rand::distr::{Alphanumeric, Uniform};

use crate::UserCommand;

const ACCESS_KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A fresh access key and its secret.
fn fresh_key(secret: &ClusterSecret) -> (NewKey, String) {
    let mut rng = rand::rng();
    let pick = Uniform::new(0, ACCESS_KEY_ALPHABET.len()).expect("non-empty alphabet");
    let access_key: String = std::iter::once('C')
        .chain(std::iter::once('K'))
        .chain((0..18).map(|_| ACCESS_KEY_ALPHABET[rng.sample(pick)] as char))
        .collect();
    let secret_key: String = (0..40).map(|_| rng.sample(Alphanumeric) as char).collect();
    let sealed_secret =
        cairn_service::sealed::seal(secret, SECRET_PURPOSE, &access_key, secret_key.as_bytes());
    (
        NewKey {
            access_key,
            sealed_secret,
        },
        secret_key,
    )
}

fn print_new_key(user: &str, access_key: &str, secret_key: &str, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "user": user,
                "access_key": access_key,
                "secret_key": secret_key,
            })
        );
    } else {
        println!("user:       {user}");
        println!("access key: {access_key}");
        println!("secret key: {secret_key}");
        println!("(the secret key is shown only now; keep it)");
    }
}

fn user_rows(users: &[UserRecord]) -> Vec<Vec<String>> {
    users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.keys
                    .iter()
                    .map(|k| k.access_key.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                u.created_ms.to_string(),
            ]
        })
        .collect()
}

pub(crate) async fn user(
    client: &MetaClient,
    secret: &ClusterSecret,
    command: UserCommand,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, json } => {
            let (key, secret_key) = fresh_key(secret);
            let access_key = key.access_key.clone();
            client
                .change_user(&UserChange::Create {
                    name: name.clone(),
                    key,
                })
                .await
                .with_context(|| format!("create user {name}"))?;
            print_new_key(&name, &access_key, &secret_key, json);
        }
        UserCommand::List { json } => {
            let users = client.users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!(
                    "{}",
                    table::render(&["USER", "ACCESS KEYS", "CREATED_MS"], &user_rows(&users))
                );
            }
        }
        UserCommand::Delete { name } => {
            // Buckets belong to their creator: deleting the owner would
            // leave buckets nobody may manage. (Checked here, not in the
            // same commit: a bucket created meanwhile is not seen.)
            let owned: Vec<String> = client
                .list_buckets()
                .await?
                .into_iter()
                .filter(|b| b.owner == name)
                .map(|b| b.name)
                .collect();
            if !owned.is_empty() {
                bail!(
                    "user {name} owns {} bucket(s) ({}); delete them first",
                    owned.len(),
                    owned.join(", ")
                );
            }
            client
                .change_user(&UserChange::Delete { name: name.clone() })
                .await
                .with_context(|| format!("delete user {name}"))?;
            println!("user {name} deleted with its access keys");
        }
        UserCommand::Keys {
            name,
            create,
            delete,
            json,
        } => {
            if create {
                let (key, secret_key) = fresh_key(secret);
                let access_key = key.access_key.clone();
                client
                    .change_user(&UserChange::AddKey {
                        user: name.clone(),
                        key,
                    })
                    .await
                    .with_context(|| format!("add a key to user {name}"))?;
                print_new_key(&name, &access_key, &secret_key, json);
            } else if let Some(access_key) = delete {
                client
                    .change_user(&UserChange::DeleteKey {
                        user: name.clone(),
                        access_key: access_key.clone(),
                    })
                    .await
                    .with_context(|| format!("delete key {access_key} of user {name}"))?;
                println!("access key {access_key} of user {name} deleted");
            } else {
                let user = client
                    .users()
                    .await?
                    .into_iter()
                    .find(|u| u.name == name)
                    .with_context(|| format!("no user {name}"))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&user.keys)?);
                } else {
                    let rows: Vec<Vec<String>> = user
                        .keys
                        .iter()
                        .map(|k| vec![k.access_key.clone(), k.created_ms.to_string()])
                        .collect();
                    println!("{}", table::render(&["ACCESS KEY", "CREATED_MS"], &rows));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_have_aws_shapes_and_their_secret_sealed() {
        let secret = ClusterSecret::new("s").expect("secret");
        let (key, secret_key) = fresh_key(&secret);
        cairn_meta_api::users::validate_access_key(&key.access_key).expect("valid key");
        assert_eq!(key.access_key.len(), 20);
        assert_eq!(secret_key.len(), 40);
        assert!(!key.sealed_secret.contains(&secret_key));
        let opened = cairn_service::sealed::open(
            &secret,
            SECRET_PURPOSE,
            &key.access_key,
            &key.sealed_secret,
        )
        .expect("opens");
        assert_eq!(opened.as_slice(), secret_key.as_bytes());
        assert_ne!(fresh_key(&secret).0.access_key, key.access_key);
    }
}
