import { describe } from 'vitest';
import { SftpBackend } from '../../src/storage/sftp.js';
import { SSHD_HINT, sftpOptions, sshdSettings, uniqueSftpDir } from '../support/sshd.js';
import { runBackendContract } from './contract.js';

const sshd = sshdSettings();
if (!sshd) {
  if (process.env.CI) throw new Error(`CI must test SFTP, but the test SFTP server is not running: ${SSHD_HINT}`);
  console.warn(`SFTP backend tests skipped: the test SFTP server is not running; ${SSHD_HINT}`);
}

describe.skipIf(!sshd)(`SFTP backend on OpenSSH (skipped without a server: ${SSHD_HINT})`, () => {
  runBackendContract('SFTP (OpenSSH, chrooted storage box)', async () => {
    const dir = uniqueSftpDir(sshd!, 'contract');
    return { backend: new SftpBackend(sftpOptions(sshd!, `${dir.rel}/archive`)), cleanup: dir.cleanup };
  });
});
