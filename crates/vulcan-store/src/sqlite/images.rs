//! [`ImageIndex`] on SQLite: the registered images, and which nodes have pulled each.

use async_trait::async_trait;
use rusqlite::params;
use time::OffsetDateTime;
use vulcan_domain::{ImageIndex, ImageRecord, StoreError, TemplateOnNode};

use super::{io, to_ms, SqliteStore};
use crate::images::add_node;

#[async_trait]
impl ImageIndex for SqliteStore {
    async fn put_image(&self, record: &ImageRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(&ImageRecord {
            nodes: Vec::new(),
            microvm: Vec::new(),
            ..record.clone()
        })
        .map_err(io)?;
        let reference = record.reference.clone();
        let default = record.default;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            if default {
                // One default image: the others lose the mark.
                let others: Vec<(String, String)> = tx
                    .prepare("SELECT reference, record FROM images WHERE reference != ?1")
                    .map_err(io)?
                    .query_map([&reference], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(io)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(io)?;
                for (other, json) in others {
                    let mut record: ImageRecord = serde_json::from_str(&json).map_err(io)?;
                    if record.default {
                        record.default = false;
                        let json = serde_json::to_string(&record).map_err(io)?;
                        tx.execute(
                            "UPDATE images SET record = ?2 WHERE reference = ?1",
                            params![other, json],
                        )
                        .map_err(io)?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO images (reference, record, registered_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (reference) DO UPDATE SET record = excluded.record",
                params![reference, json, to_ms(OffsetDateTime::now_utc())],
            )
            .map_err(io)?;
            tx.commit().map_err(io)
        })
        .await
    }

    async fn remove_image(&self, reference: &str) -> Result<bool, StoreError> {
        let reference = reference.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let n = tx
                .execute("DELETE FROM images WHERE reference = ?1", [&reference])
                .map_err(io)?;
            tx.execute("DELETE FROM image_nodes WHERE reference = ?1", [&reference])
                .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(n > 0)
        })
        .await
    }

    async fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.read(|conn| {
            let mut images: Vec<ImageRecord> = conn
                .prepare_cached("SELECT record FROM images ORDER BY reference")
                .map_err(io)?
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(io)?
                .map(|json| serde_json::from_str(&json.map_err(io)?).map_err(io))
                .collect::<Result<_, StoreError>>()?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT reference, node_id, microvm FROM image_nodes ORDER BY node_id",
                )
                .map_err(io)?;
            let pulled = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .map_err(io)?;
            for row in pulled {
                let (reference, node, microvm) = row.map_err(io)?;
                if let Some(image) = images.iter_mut().find(|i| i.reference == reference) {
                    add_node(image, node, microvm.as_deref());
                }
            }
            Ok(images)
        })
        .await
    }

    async fn image_pulled(&self, reference: &str, node: &str) -> Result<(), StoreError> {
        let (reference, node) = (reference.to_owned(), node.to_owned());
        self.write_small(0, move |conn| {
            conn.prepare_cached(
                "INSERT INTO image_nodes (reference, node_id, pulled_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (reference, node_id) DO UPDATE SET pulled_at = excluded.pulled_at",
            )
            .map_err(io)?
            .execute(params![reference, node, to_ms(OffsetDateTime::now_utc())])
            .map(drop)
            .map_err(io)
        })
        .await
    }

    async fn image_template(
        &self,
        digest: &str,
        node: &str,
        template: Option<&TemplateOnNode>,
    ) -> Result<(), StoreError> {
        let json = template
            .map(serde_json::to_string)
            .transpose()
            .map_err(io)?;
        let (digest, node) = (digest.to_owned(), node.to_owned());
        self.write_small(0, move |conn| {
            conn.prepare_cached(
                "UPDATE image_nodes SET microvm = ?3 WHERE node_id = ?2 AND reference IN
                   (SELECT reference FROM images WHERE json_extract(record, '$.digest') = ?1)",
            )
            .map_err(io)?
            .execute(params![digest, node, json])
            .map(drop)
            .map_err(io)
        })
        .await
    }
}
