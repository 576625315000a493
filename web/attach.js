// Files and voice messages: upload to P/upload (multipart field `file`, the user's
// token), then the caller sends the file_upload / voice_message frame naming it.
import { api } from './common.js';

export class Attachments {
  constructor({ token, fileInput, attachButton, recordButton, onUploaded, onError }) {
    this.token = token;
    this.onUploaded = onUploaded;
    this.onError = onError;
    this.recordButton = recordButton;
    this.recorder = null;
    attachButton.addEventListener('click', () => fileInput.click());
    fileInput.addEventListener('change', async () => {
      const file = fileInput.files[0];
      fileInput.value = '';
      if (file) await this.upload('file_upload', file, file.name);
    });
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === 'undefined') {
      recordButton.hidden = true;
    } else {
      recordButton.addEventListener('click', () => this.toggleRecording());
    }
  }

  async upload(type, blob, name) {
    const form = new FormData();
    form.append('file', blob, name);
    try {
      const upload = await api('upload', { token: this.token, method: 'POST', body: form });
      this.onUploaded(type, upload, name);
    } catch (error) {
      this.onError(error.status === 404 || error.status === 405
        ? 'File uploads are not available on this server.'
        : `The upload failed: ${error.message}`);
    }
  }

  async toggleRecording() {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      this.onError('The microphone is not available (permission refused or no device).');
      return;
    }
    const chunks = [];
    const recorder = new MediaRecorder(stream);
    this.recorder = recorder;
    recorder.addEventListener('dataavailable', (event) => chunks.push(event.data));
    recorder.addEventListener('stop', () => {
      stream.getTracks().forEach((track) => track.stop());
      this.recorder = null;
      this.setRecording(false);
      const type = recorder.mimeType || 'audio/webm';
      const extension = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
      const blob = new Blob(chunks, { type });
      if (blob.size > 0) this.upload('voice_message', blob, `voice-message.${extension}`);
    });
    recorder.start();
    this.setRecording(true);
  }

  setRecording(on) {
    this.recordButton.setAttribute('aria-pressed', String(on));
    this.recordButton.setAttribute('aria-label', on ? 'Stop recording and send' : 'Record a voice message');
    this.recordButton.classList.toggle('recording', on);
  }
}
