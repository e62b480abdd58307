//! Domains and accounts.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::sql::{self, db_error, get, is_unique_violation};
use super::{mailboxes, messages};
use crate::names::AccountAddress;
use crate::{Account, Result, StoreError};

pub(super) async fn add_domain(db: &impl GenericClient, domain: &str) -> Result<()> {
    sql::execute(
        db,
        "add domain",
        "INSERT INTO domains (name) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&domain],
    )
    .await?;
    Ok(())
}

pub(super) async fn domains(db: &impl GenericClient) -> Result<Vec<String>> {
    sql::rows(
        db,
        "list domains",
        "SELECT name FROM domains ORDER BY name",
        &[],
    )
    .await?
    .iter()
    .map(|row| get(row, 0))
    .collect()
}

pub(super) async fn is_local_domain(db: &impl GenericClient, domain: &str) -> Result<bool> {
    let found = sql::row(
        db,
        "look up domain",
        "SELECT 1 FROM domains WHERE name = $1",
        &[&domain],
    )
    .await?;
    Ok(found.is_some())
}

/// Creates the account with its domain (if new) and default mailboxes; the caller's
/// transaction makes that all or nothing.
pub(super) async fn create_account(
    tx: &Transaction<'_>,
    address: &AccountAddress,
    password_hash: &str,
    now: i64,
) -> Result<Account> {
    add_domain(tx, &address.domain).await?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO accounts (address, domain, password_hash) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .await;
    let inserted = match inserted {
        Ok(statement) => {
            tx.query_one(
                &statement,
                &[&address.address, &address.domain, &password_hash],
            )
            .await
        }
        Err(e) => Err(e),
    };
    let id: i64 = match inserted {
        Ok(row) => get(&row, 0)?,
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(address.address.clone()));
        }
        Err(e) => return Err(db_error("insert account")(e)),
    };
    mailboxes::create_defaults(tx, id, now).await?;
    Ok(Account {
        id,
        address: address.address.clone(),
        password_hash: password_hash.to_string(),
    })
}

pub(super) async fn account(db: &impl GenericClient, address: &str) -> Result<Option<Account>> {
    sql::row(
        db,
        "look up account",
        "SELECT id, address, password_hash FROM accounts WHERE address = $1",
        &[&address],
    )
    .await?
    .map(|row| account_from_row(&row))
    .transpose()
}

pub(super) async fn accounts(db: &impl GenericClient) -> Result<Vec<Account>> {
    sql::rows(
        db,
        "list accounts",
        "SELECT id, address, password_hash FROM accounts ORDER BY address",
        &[],
    )
    .await?
    .iter()
    .map(account_from_row)
    .collect()
}

fn account_from_row(row: &Row) -> Result<Account> {
    Ok(Account {
        id: get(row, 0)?,
        address: get(row, 1)?,
        password_hash: get(row, 2)?,
    })
}

pub(super) async fn set_password_hash(
    db: &impl GenericClient,
    address: &str,
    hash: &str,
) -> Result<()> {
    let updated = sql::execute(
        db,
        "update password",
        "UPDATE accounts SET password_hash = $2 WHERE address = $1",
        &[&address, &hash],
    )
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound(address.to_string()));
    }
    Ok(())
}

/// Deletes the account; its mailboxes and their messages go with it (foreign-key
/// cascade), then so do the bytes nothing else refers to any more.
pub(super) async fn remove_account(tx: &Transaction<'_>, address: &str) -> Result<()> {
    let Some(account) = account(tx, address).await? else {
        return Err(StoreError::NotFound(address.to_string()));
    };
    // Locking the mailboxes first waits out deliveries in progress, in the order every
    // write locks them.
    let ids: Vec<i64> = sql::rows(
        tx,
        "lock account's mailboxes",
        "SELECT id FROM mailboxes WHERE account = $1 ORDER BY id FOR UPDATE",
        &[&account.id],
    )
    .await?
    .iter()
    .map(|row| get(row, 0))
    .collect::<Result<_>>()?;
    let blobs = messages::blobs_of_mailboxes(tx, &ids).await?;
    sql::execute(
        tx,
        "delete account",
        "DELETE FROM accounts WHERE id = $1",
        &[&account.id],
    )
    .await?;
    messages::delete_unreferenced_blobs(tx, &blobs).await
}
