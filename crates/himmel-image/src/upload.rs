//! Receiving image data: `PUT /file` (queued -> saving -> active), `PUT
//! /stage` (queued -> uploading) and the `glance-direct` import of staged
//! data (uploading -> importing -> active). Any failure puts the image back
//! where the client can retry (queued) and removes what was written.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use himmel_core::Error;

use crate::data::DataStore;
use crate::model::{Image, Status};
use crate::store::{self, Uploaded};
use crate::ImageService;

impl ImageService {
    /// Encrypts `body` into a new data file under a fresh data key of the
    /// image's owner.
    async fn receive<S, E>(&self, image: &Image, mut body: S) -> Result<Uploaded, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let file_id = DataStore::new_file_id();
        let (key, wrapped) = self
            .keyring()
            .new_data_key(&image.owner, file_id.as_bytes())
            .await?;
        let mut writer = self
            .data()
            .writer(file_id.clone(), key, self.max_image_size());
        while let Some(piece) = body.next().await {
            let piece = piece
                .map_err(|e| Error::BadRequest(format!("Could not read the image data: {e}")))?;
            writer.write(piece).await?;
        }
        let written = writer.finish().await?;
        Ok(Uploaded {
            file_id: written.file_id,
            key_project: image.owner.clone(),
            data_key: wrapped,
            size: written.size,
            md5: written.md5,
            sha512: written.sha512,
        })
    }

    /// `PUT /v2/images/{id}/file`.
    pub(crate) async fn upload<S, E>(&self, image: &Image, body: S) -> Result<(), Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        require_formats(image)?;
        if !store::transition(self.db(), &image.id, &[Status::Queued], Status::Saving).await? {
            return Err(not_queued(image));
        }
        match self.receive(image, body).await {
            Ok(up) => self.commit_data(&image.id, Status::Saving, up).await,
            Err(e) => {
                store::transition(self.db(), &image.id, &[Status::Saving], Status::Queued).await?;
                Err(e)
            }
        }
    }

    /// `PUT /v2/images/{id}/stage`.
    pub(crate) async fn stage<S, E>(&self, image: &Image, body: S) -> Result<(), Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if !store::transition(self.db(), &image.id, &[Status::Queued], Status::Uploading).await? {
            return Err(not_queued(image));
        }
        let staged = match self.receive(image, body).await {
            Ok(up) => up,
            Err(e) => {
                store::transition(self.db(), &image.id, &[Status::Uploading], Status::Queued)
                    .await?;
                return Err(e);
            }
        };
        if !store::set_staged(self.db(), &image.id, &staged).await? {
            self.data().remove(&[staged.file_id]).await;
            return Err(Error::Conflict(format!(
                "Image {} changed while its data was staged.",
                image.id
            )));
        }
        Ok(())
    }

    /// The `glance-direct` import: re-reads the staged data (decrypting and
    /// so verifying it), writes it as the image's data and checks it has
    /// the size that was staged.
    pub(crate) async fn import_staged(&self, image: &Image) -> Result<(), Error> {
        let (Some(staged), Some(staged_size)) = (image.staged.clone(), image.staged_size) else {
            return Err(Error::Conflict(format!(
                "Image {} has no staged data to import (its status is {}).",
                image.id, image.status
            )));
        };
        require_formats(image)?;
        if !store::transition(
            self.db(),
            &image.id,
            &[Status::Uploading],
            Status::Importing,
        )
        .await?
        {
            return Err(Error::Conflict(format!(
                "Image {} is not ready for import (its status is {}).",
                image.id, image.status
            )));
        }
        let result = async {
            let key = self
                .keyring()
                .open_data_key(
                    &staged.key_project,
                    staged.file_id.as_bytes(),
                    &staged.data_key,
                )
                .await?;
            let up = self
                .receive(image, Box::pin(self.data().read(&staged.file_id, key)))
                .await?;
            if up.size != staged_size {
                self.data().remove(&[up.file_id]).await;
                return Err(Error::BadRequest(format!(
                    "The staged data of image {} has {} bytes, {staged_size} were staged.",
                    image.id, up.size
                )));
            }
            Ok(up)
        }
        .await;
        match result {
            Ok(up) => {
                self.commit_data(&image.id, Status::Importing, up).await?;
                self.data().remove(&[staged.file_id]).await;
                Ok(())
            }
            Err(e) => {
                if let Some(file) = store::clear_staged(self.db(), &image.id).await? {
                    self.data().remove(&[file]).await;
                }
                Err(e)
            }
        }
    }

    /// Makes `up` the image's data if it is still in status `from`.
    async fn commit_data(&self, id: &str, from: Status, up: Uploaded) -> Result<(), Error> {
        match store::activate(self.db(), id, from, &up).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.data().remove(&[up.file_id]).await;
                Err(Error::Conflict(format!(
                    "Image {id} was deleted or changed while its data was written."
                )))
            }
            Err(e) => {
                self.data().remove(&[up.file_id]).await;
                Err(e)
            }
        }
    }

    /// Uploads a file's bytes as the data of queued image `id`.
    pub(crate) async fn upload_from_reader(
        &self,
        id: &str,
        file: tokio::fs::File,
    ) -> Result<(), Error> {
        let image = store::get(self.db(), id)
            .await?
            .ok_or_else(|| crate::access::not_found(id))?;
        let body = futures::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        self.upload(&image, Box::pin(body)).await
    }
}

fn require_formats(image: &Image) -> Result<(), Error> {
    if image.disk_format.is_none() || image.container_format.is_none() {
        return Err(Error::BadRequest(
            "Properties disk_format, container_format must be set prior to saving data.".into(),
        ));
    }
    Ok(())
}

fn not_queued(image: &Image) -> Error {
    Error::Conflict(format!(
        "Image status transition from {} to saving is not allowed",
        image.status
    ))
}
