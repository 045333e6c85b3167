//! [`ImageIndex`] on PostgreSQL: images registered once for the whole cluster, and which
//! nodes have pulled each.

use async_trait::async_trait;
use time::OffsetDateTime;
use vulcan_domain::{ImageIndex, ImageRecord, StoreError, TemplateOnNode};

use super::workloads::to_ms;
use super::{io, Fail, PgStore};
use crate::images::add_node;

#[async_trait]
impl ImageIndex for PgStore {
    async fn put_image(&self, record: &ImageRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(&ImageRecord {
            nodes: Vec::new(),
            microvm: Vec::new(),
            ..record.clone()
        })
        .map_err(io)?;
        self.run(|c, _| {
            let json = json.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                if record.default {
                    // One default image: the others lose the mark.
                    let others = tx
                        .query(
                            "SELECT reference, record FROM images WHERE reference != $1 FOR UPDATE",
                            &[&record.reference],
                        )
                        .await?;
                    for row in others {
                        let mut other: ImageRecord =
                            serde_json::from_str(row.get(1)).map_err(|e| Fail::Store(io(e)))?;
                        if other.default {
                            other.default = false;
                            let json =
                                serde_json::to_string(&other).map_err(|e| Fail::Store(io(e)))?;
                            tx.execute(
                                "UPDATE images SET record = $2 WHERE reference = $1",
                                &[&row.get::<_, String>(0), &json],
                            )
                            .await?;
                        }
                    }
                }
                tx.execute(
                    "INSERT INTO images (reference, record, registered_at) VALUES ($1, $2, $3)
                     ON CONFLICT (reference) DO UPDATE SET record = EXCLUDED.record",
                    &[&record.reference, &json, &to_ms(OffsetDateTime::now_utc())],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn remove_image(&self, reference: &str) -> Result<bool, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let n = tx
                    .execute("DELETE FROM images WHERE reference = $1", &[&reference])
                    .await?;
                tx.execute(
                    "DELETE FROM image_nodes WHERE reference = $1",
                    &[&reference],
                )
                .await?;
                tx.commit().await?;
                Ok(n > 0)
            })
        })
        .await
    }

    async fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let mut images: Vec<ImageRecord> = c
                    .query("SELECT record FROM images ORDER BY reference", &[])
                    .await?
                    .iter()
                    .map(|r| serde_json::from_str(r.get(0)).map_err(|e| Fail::Store(io(e))))
                    .collect::<Result<_, _>>()?;
                for row in c
                    .query(
                        "SELECT reference, node_id, microvm FROM image_nodes ORDER BY node_id",
                        &[],
                    )
                    .await?
                {
                    let reference: String = row.get(0);
                    if let Some(image) = images.iter_mut().find(|i| i.reference == reference) {
                        add_node(image, row.get(1), row.get::<_, Option<&str>>(2));
                    }
                }
                Ok(images)
            })
        })
        .await
    }

    async fn image_pulled(&self, reference: &str, node: &str) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO image_nodes (reference, node_id, pulled_at) VALUES ($1, $2, $3)
                     ON CONFLICT (reference, node_id) DO UPDATE SET pulled_at = EXCLUDED.pulled_at",
                    &[&reference, &node, &to_ms(OffsetDateTime::now_utc())],
                )
                .await?;
                Ok(())
            })
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
        self.run(|c, _| {
            let json = json.clone();
            Box::pin(async move {
                c.execute(
                    "UPDATE image_nodes SET microvm = $3 WHERE node_id = $2 AND reference IN
                       (SELECT reference FROM images WHERE (record::jsonb)->>'digest' = $1)",
                    &[&digest, &node, &json],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
