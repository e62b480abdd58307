//! Domains and accounts.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{is_unique_violation, mailboxes, messages, sql_error};
use crate::names::AccountAddress;
use crate::{Account, AccountId, Result, StoreError};

pub(super) fn add_domain(conn: &Connection, domain: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO domains (name) VALUES (?1) ON CONFLICT DO NOTHING")
        .and_then(|mut insert| insert.execute([domain]))
        .map_err(sql_error("add domain"))?;
    Ok(())
}

pub(super) fn domains(conn: &Connection) -> Result<Vec<String>> {
    let mut select = conn
        .prepare_cached("SELECT name FROM domains ORDER BY name")
        .map_err(sql_error("list domains"))?;
    select
        .query_map([], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(sql_error("list domains"))
}

pub(super) fn is_local_domain(conn: &Connection, domain: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM domains WHERE name = ?1)")
        .and_then(|mut select| select.query_row([domain], |row| row.get(0)))
        .map_err(sql_error("look up domain"))
}

/// Creates the account with its domain (if new) and default mailboxes; the caller's
/// transaction makes that all or nothing.
pub(super) fn create_account(
    conn: &Connection,
    address: &AccountAddress,
    password_hash: &str,
    now: i64,
) -> Result<Account> {
    add_domain(conn, &address.domain)?;
    let inserted = conn
        .prepare_cached("INSERT INTO accounts (address, domain, password_hash) VALUES (?1, ?2, ?3)")
        .and_then(|mut insert| {
            insert.execute(params![address.address, address.domain, password_hash])
        });
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(address.address.clone()));
        }
        Err(e) => return Err(sql_error("insert account")(e)),
    }
    let id = conn.last_insert_rowid();
    mailboxes::create_defaults(conn, id, now)?;
    Ok(Account {
        id,
        address: address.address.clone(),
        password_hash: password_hash.to_string(),
    })
}

pub(super) fn account(conn: &Connection, address: &str) -> Result<Option<Account>> {
    conn.prepare_cached("SELECT id, address, password_hash FROM accounts WHERE address = ?1")
        .and_then(|mut select| select.query_row([address], account_from_row).optional())
        .map_err(sql_error("look up account"))
}

pub(super) fn accounts(conn: &Connection) -> Result<Vec<Account>> {
    let mut select = conn
        .prepare_cached("SELECT id, address, password_hash FROM accounts ORDER BY address")
        .map_err(sql_error("list accounts"))?;
    select
        .query_map([], account_from_row)
        .and_then(Iterator::collect)
        .map_err(sql_error("list accounts"))
}

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: row.get(0)?,
        address: row.get(1)?,
        password_hash: row.get(2)?,
    })
}

pub(super) fn set_password_hash(conn: &Connection, address: &str, hash: &str) -> Result<()> {
    let updated = conn
        .prepare_cached("UPDATE accounts SET password_hash = ?2 WHERE address = ?1")
        .and_then(|mut update| update.execute([address, hash]))
        .map_err(sql_error("update password"))?;
    if updated == 0 {
        return Err(StoreError::NotFound(address.to_string()));
    }
    Ok(())
}

/// Deletes the account; its mailboxes and their messages go with it (foreign-key
/// cascade), then so do the bytes nothing else refers to any more.
pub(super) fn remove_account(conn: &Connection, address: &str) -> Result<()> {
    let Some(account) = account(conn, address)? else {
        return Err(StoreError::NotFound(address.to_string()));
    };
    let blobs = messages::blobs_of_account(conn, account.id)?;
    delete_account_row(conn, account.id)?;
    messages::delete_unreferenced_blobs(conn, &blobs)
}

fn delete_account_row(conn: &Connection, id: AccountId) -> Result<()> {
    conn.prepare_cached("DELETE FROM accounts WHERE id = ?1")
        .and_then(|mut delete| delete.execute([id]))
        .map_err(sql_error("delete account"))?;
    Ok(())
}
